//! Prices per model and the cost of a request, split like DeepSeek's bill: input tokens that
//! hit the context cache, input tokens that missed it, and output tokens (reasoning included,
//! as DeepSeek bills R1), each per million tokens.
//!
//! Defaults: DeepSeek-R1's launch prices in CNY (¥1 cache hit, ¥4 cache miss, ¥16 output per
//! 1M tokens). `--price-file` replaces them with a JSON table:
//! `{"currency": "USD", "default": {"input_cache_hit": 0.14, "input_cache_miss": 0.55,
//! "output": 2.19}, "models": {"deepseek-chat": {...}}}`.

use crate::api::common::Cost;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    pub input_cache_hit: f64,
    pub input_cache_miss: f64,
    pub output: f64,
}

impl Prices {
    pub const R1_CNY: Prices = Prices {
        input_cache_hit: 1.0,
        input_cache_miss: 4.0,
        output: 16.0,
    };

    fn validate(&self, name: &str) -> Result<(), String> {
        for (field, v) in [
            ("input_cache_hit", self.input_cache_hit),
            ("input_cache_miss", self.input_cache_miss),
            ("output", self.output),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(format!(
                    "{name}.{field} = {v}: expected a price >= 0 per million tokens"
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    pub currency: String,
    /// Prices of models the table does not list.
    pub default: Prices,
    #[serde(default)]
    pub models: HashMap<String, Prices>,
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable {
            currency: "CNY".into(),
            default: Prices::R1_CNY,
            models: HashMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("price file {}: {message}", path.display())]
pub struct PriceFileError {
    pub path: PathBuf,
    pub message: String,
}

impl PriceTable {
    pub fn from_file(path: &Path) -> Result<Self, PriceFileError> {
        let err = |message: String| PriceFileError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut de = serde_json::Deserializer::from_str(&text);
        let table: PriceTable = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| err(format!("at {}: {}", e.path(), e.inner())))?;
        table.default.validate("default").map_err(err)?;
        for (name, p) in &table.models {
            p.validate(&format!("models.{name}")).map_err(err)?;
        }
        Ok(table)
    }

    pub fn prices(&self, model: &str) -> Prices {
        self.models.get(model).copied().unwrap_or(self.default)
    }

    pub fn cost(&self, model: &str, cache_hit: usize, cache_miss: usize, output: usize) -> Cost {
        let p = self.prices(model);
        let per = |n: usize, price: f64| n as f64 * price / 1e6;
        let (hit, miss, out) = (
            per(cache_hit, p.input_cache_hit),
            per(cache_miss, p.input_cache_miss),
            per(output, p.output),
        );
        Cost {
            currency: self.currency.clone(),
            input_cache_hit: hit,
            input_cache_miss: miss,
            output: out,
            total: hit + miss + out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_r1_in_cny() {
        let c = PriceTable::default().cost("anything", 1_000_000, 500_000, 250_000);
        assert_eq!(c.currency, "CNY");
        assert_eq!(
            (c.input_cache_hit, c.input_cache_miss, c.output, c.total),
            (1.0, 2.0, 4.0, 7.0)
        );
    }

    #[test]
    fn file_overrides_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("prices.json");
        std::fs::write(&p, r#"{"currency":"USD","default":{"input_cache_hit":0.14,"input_cache_miss":0.55,"output":2.19},
            "models":{"deepseek-chat":{"input_cache_hit":0.07,"input_cache_miss":0.27,"output":1.10}}}"#).unwrap();
        let t = PriceTable::from_file(&p).unwrap();
        assert_eq!(t.prices("deepseek-chat").output, 1.10);
        assert_eq!(t.prices("other").output, 2.19);
        std::fs::write(&p, r#"{"currency":"USD","default":{"input_cache_hit":-1,"input_cache_miss":0,"output":0}}"#).unwrap();
        assert!(PriceTable::from_file(&p)
            .unwrap_err()
            .to_string()
            .contains("default.input_cache_hit = -1"));
        std::fs::write(
            &p,
            r#"{"currency":"USD","default":{"input_cache_hit":"x"}}"#,
        )
        .unwrap();
        assert!(PriceTable::from_file(&p)
            .unwrap_err()
            .to_string()
            .contains("default.input_cache_hit"));
    }
}
