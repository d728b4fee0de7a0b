//! Learning-rate schedules: linear warmup from 0, then cosine decay, warmup-stable-decay
//! (WSD: flat, then a linear decay over the final fraction — the shape of V3's
//! "flat to 10T, then decay" schedule, §4.2), or constant. Steps are 0-based; the rate at
//! step `s` is the one its update uses.

use crate::config::{ScheduleKind, ScheduleSection};

#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    pub kind: ScheduleKind,
    pub peak: f64,
    pub min: f64,
    pub warmup: u64,
    pub total: u64,
    pub decay_fraction: f64,
}

impl LrSchedule {
    pub fn new(s: &ScheduleSection, peak: f64, total: u64) -> Self {
        LrSchedule {
            kind: s.kind,
            peak,
            min: peak * s.min_lr_ratio,
            warmup: s.warmup_steps,
            total,
            decay_fraction: s.decay_fraction,
        }
    }

    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let after = (step - self.warmup) as f64;
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        match self.kind {
            ScheduleKind::Constant => self.peak,
            ScheduleKind::Cosine => {
                let p = (after / span).min(1.0);
                self.min + 0.5 * (self.peak - self.min) * (1.0 + (std::f64::consts::PI * p).cos())
            }
            ScheduleKind::Wsd => {
                let decay_steps = (self.decay_fraction * self.total as f64).round();
                let decay_start = (self.total as f64 - decay_steps).max(self.warmup as f64);
                let s = step as f64;
                if s < decay_start || decay_steps <= 0.0 {
                    self.peak
                } else {
                    let p = ((s - decay_start + 1.0) / decay_steps).min(1.0);
                    self.peak + (self.min - self.peak) * p
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(kind: ScheduleKind) -> LrSchedule {
        let s = ScheduleSection {
            kind,
            warmup_steps: 10,
            min_lr_ratio: 0.1,
            decay_fraction: 0.2,
        };
        LrSchedule::new(&s, 1.0, 100)
    }

    #[test]
    fn warmup_then_cosine() {
        let s = sched(ScheduleKind::Cosine);
        assert_eq!(s.lr_at(0), 0.1);
        assert_eq!(s.lr_at(9), 1.0);
        assert_eq!(s.lr_at(10), 1.0);
        assert!((s.lr_at(55) - 0.55).abs() < 1e-12);
        assert!((s.lr_at(100) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn wsd_is_flat_then_decays_linearly() {
        let s = sched(ScheduleKind::Wsd);
        assert_eq!(s.lr_at(50), 1.0);
        assert_eq!(s.lr_at(79), 1.0);
        assert!((s.lr_at(89) - 0.55).abs() < 1e-12);
        assert!((s.lr_at(99) - 0.1).abs() < 1e-12);
    }
}
