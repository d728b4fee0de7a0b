//! Worked solutions for the `arithmetic`/`addsub` tasks' sums and differences: the
//! column-by-column trace a person writes, one digit per line, with the carry or borrow named.
//! They are the reasoning of the cold-start data that `whale demo` pretrains and fine-tunes
//! on, so a toy model learns a procedure rather than a lookup table.
//!
//! The trace is compact (no spaces before numbers) so a small byte-level BPE keeps digits as
//! digits:
//!
//! ```text
//! 47+38:
//! 7+8+0=15->5,c1
//! 4+3+1=8->85,c0
//! so=85
//! ```

use super::arithmetic::Arithmetic;

/// The reasoning for `question` (as the `arithmetic`/`addsub` tasks phrase it) and its value;
/// `None` for questions of another shape or a product (no column trace is defined for `*`).
pub fn worked_solution(question: &str) -> Option<(String, i64)> {
    let (a, op, b) = Arithmetic::parse(question)?;
    if a < 0 || b < 0 {
        return None;
    }
    let (head, lines, v) = match op {
        '+' => {
            let (lines, v) = add_columns(a, b);
            (format!("{a}+{b}:"), lines, v)
        }
        '-' if a >= b => {
            let (lines, v) = sub_columns(a, b);
            (format!("{a}-{b}:"), lines, v)
        }
        '-' => {
            // A negative difference: subtract the other way round and negate.
            let (lines, v) = sub_columns(b, a);
            (format!("{a}<{b},-({b}-{a}):"), lines, -v)
        }
        _ => return None,
    };
    Some((format!("{head}\n{}\nso={v}", lines.join("\n")), v))
}

fn digits(n: i64) -> Vec<i64> {
    n.to_string().bytes().rev().map(|c| i64::from(c - b'0')).collect()
}

fn add_columns(a: i64, b: i64) -> (Vec<String>, i64) {
    let (da, db) = (digits(a), digits(b));
    let (mut carry, mut res, mut lines) = (0, String::new(), Vec::new());
    for i in 0..da.len().max(db.len()) {
        let (x, y) = (da.get(i).copied().unwrap_or(0), db.get(i).copied().unwrap_or(0));
        let s = x + y + carry;
        res.insert(0, char::from(b'0' + (s % 10) as u8));
        lines.push(format!("{x}+{y}+{carry}={s}->{res},c{}", s / 10));
        carry = s / 10;
    }
    if carry > 0 {
        res.insert(0, '1');
        lines.push(format!("carry 1->{res}"));
    }
    (lines, a + b)
}

/// `a - b` for `a >= b`, with borrows.
fn sub_columns(a: i64, b: i64) -> (Vec<String>, i64) {
    let (da, db) = (digits(a), digits(b));
    let (mut borrow, mut res, mut lines) = (0, String::new(), Vec::new());
    for (i, &x) in da.iter().enumerate() {
        let y = db.get(i).copied().unwrap_or(0);
        let v = x - y - borrow;
        let (digit, line) = if v < 0 {
            (v + 10, format!("{x}-{y}-{borrow}={v}+10={}->{}{res},b1", v + 10, v + 10))
        } else {
            (v, format!("{x}-{y}-{borrow}={v}->{v}{res},b0"))
        };
        borrow = i64::from(v < 0);
        res.insert(0, char::from(b'0' + digit as u8));
        lines.push(line);
    }
    (lines, a - b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::Check;
    use crate::task::Split;

    #[test]
    fn traces_show_each_column() {
        let (t, v) = worked_solution("What is 47 + 38?").unwrap();
        assert_eq!(t, "47+38:\n7+8+0=15->5,c1\n4+3+1=8->85,c0\nso=85");
        assert_eq!(v, 85);
        let (t, v) = worked_solution("What is 95 + 17?").unwrap();
        assert_eq!(t, "95+17:\n5+7+0=12->2,c1\n9+1+1=11->12,c1\ncarry 1->112\nso=112");
        assert_eq!(v, 112);
        let (t, v) = worked_solution("What is 52 - 38?").unwrap();
        assert_eq!(t, "52-38:\n2-8-0=-6+10=4->4,b1\n5-3-1=1->14,b0\nso=14");
        assert_eq!(v, 14);
        let (t, v) = worked_solution("What is 38 - 52?").unwrap();
        assert!(t.starts_with("38<52,-(52-38):\n"), "{t}");
        assert_eq!(v, -14);
        assert_eq!(worked_solution("What is 3 * 4?"), None);
        assert_eq!(worked_solution("How many apples?"), None);
    }

    /// Every trace ends in the value the task's own checker accepts, on both splits.
    #[test]
    fn traces_agree_with_the_task_gold() {
        let task = super::super::task_by_name("addsub:3", "question", "answer").unwrap();
        for split in [Split::Train, Split::Test] {
            for p in task.problems(split, 300).unwrap() {
                let (trace, v) = worked_solution(&p.question).unwrap_or_else(|| panic!("no trace for {:?}", p.question));
                let Check::Value { gold } = &p.check else { panic!("addsub checks a value") };
                assert_eq!(&v.to_string(), gold, "{}", p.question);
                assert!(trace.ends_with(&format!("so={gold}")), "{trace}");
            }
        }
    }
}
