//! A small evaluator for the numeric expressions final answers are written in: integers,
//! decimals, `a/b`, `\frac{a}{b}` (`\dfrac`, `\tfrac`), `\sqrt{x}` / `\sqrt x`, `^`, `*`,
//! `\cdot`, `\times`, parentheses and braces, unary minus, `\pi`. This is the "symbolic
//! equality where it is cheap" of the verifier: `\frac{\sqrt{2}}{2}` equals `\sqrt{2}/2`
//! equals `0.7071067811865476` because they evaluate to the same number.

/// The value of `s`, or `None` if it is not a closed numeric expression.
pub fn eval(s: &str) -> Option<f64> {
    let tokens = tokenize(s)?;
    let mut p = Parser { t: &tokens, i: 0 };
    let v = p.sum()?;
    (p.i == tokens.len() && v.is_finite()).then_some(v)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Op(char), // + - * / ^ ( ) { }
    Frac,
    Sqrt,
}

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || (c == '.' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Num(s[start..i].parse().ok()?));
        } else if "+-*/^(){}".contains(c) {
            out.push(Tok::Op(c));
            i += 1;
        } else if c == '\\' {
            let start = i + 1;
            i = start;
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            match &s[start..i] {
                "frac" | "dfrac" | "tfrac" => {
                    out.push(Tok::Frac);
                    // `\frac12`: without braces each argument is one character.
                    if b.len() >= i + 2 && b[i].is_ascii_digit() && b[i + 1].is_ascii_digit() {
                        out.push(Tok::Num(f64::from(b[i] - b'0')));
                        out.push(Tok::Num(f64::from(b[i + 1] - b'0')));
                        i += 2;
                    }
                }
                "sqrt" => out.push(Tok::Sqrt),
                "cdot" | "times" => out.push(Tok::Op('*')),
                "div" => out.push(Tok::Op('/')),
                "pi" => out.push(Tok::Num(std::f64::consts::PI)),
                "left" | "right" | "," | "!" => {}
                "" if b.get(i).is_some_and(|&c| c == b',' || c == b'!' || c == b' ') => i += 1,
                _ => return None,
            }
        } else {
            return None;
        }
    }
    Some(out)
}

struct Parser<'a> {
    t: &'a [Tok],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.t.get(self.i)
    }

    fn eat(&mut self, op: char) -> bool {
        if self.peek() == Some(&Tok::Op(op)) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn sum(&mut self) -> Option<f64> {
        let mut v = self.product()?;
        loop {
            if self.eat('+') {
                v += self.product()?;
            } else if self.eat('-') {
                v -= self.product()?;
            } else {
                return Some(v);
            }
        }
    }

    fn product(&mut self) -> Option<f64> {
        let mut v = self.unary()?;
        loop {
            if self.eat('*') {
                v *= self.unary()?;
            } else if self.eat('/') {
                v /= self.unary()?;
            } else if matches!(self.peek(), Some(Tok::Num(_) | Tok::Frac | Tok::Sqrt | Tok::Op('(' | '{'))) {
                v *= self.unary()?; // implicit product: 2\sqrt{3}, 3\pi
            } else {
                return Some(v);
            }
        }
    }

    fn unary(&mut self) -> Option<f64> {
        if self.eat('-') {
            return Some(-self.unary()?);
        }
        if self.eat('+') {
            return self.unary();
        }
        let base = self.atom()?;
        if self.eat('^') {
            let e = self.unary()?;
            return Some(base.powf(e));
        }
        Some(base)
    }

    fn group(&mut self) -> Option<f64> {
        if self.eat('{') {
            let v = self.sum()?;
            self.eat('}').then_some(v)
        } else {
            // `\frac12`: single digits
            match self.t.get(self.i)? {
                Tok::Num(n) => {
                    self.i += 1;
                    Some(*n)
                }
                _ => self.atom(),
            }
        }
    }

    fn atom(&mut self) -> Option<f64> {
        match self.t.get(self.i)?.clone() {
            Tok::Num(n) => {
                self.i += 1;
                Some(n)
            }
            Tok::Frac => {
                self.i += 1;
                let a = self.group()?;
                let b = self.group()?;
                Some(a / b)
            }
            Tok::Sqrt => {
                self.i += 1;
                let x = self.group()?;
                (x >= 0.0).then(|| x.sqrt())
            }
            Tok::Op('(') => {
                self.i += 1;
                let v = self.sum()?;
                self.eat(')').then_some(v)
            }
            Tok::Op('{') => {
                self.i += 1;
                let v = self.sum()?;
                self.eat('}').then_some(v)
            }
            Tok::Op(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::eval;

    #[test]
    fn evaluates_latex_and_plain_arithmetic() {
        let close = |s: &str, v: f64| {
            let got = eval(s).unwrap_or_else(|| panic!("{s} did not evaluate"));
            assert!((got - v).abs() < 1e-12, "{s} = {got}, expected {v}");
        };
        close("42", 42.0);
        close("-3.5", -3.5);
        close("3/4", 0.75);
        close("\\frac{3}{4}", 0.75);
        close("\\dfrac{\\sqrt{2}}{2}", 2f64.sqrt() / 2.0);
        close("\\frac12", 0.5);
        close("2\\sqrt{3}", 2.0 * 3f64.sqrt());
        close("(1+2)*3^2", 27.0);
        close("2^{10}", 1024.0);
        close("3 \\times 4 \\cdot 2", 24.0);
        close("\\left(1+1\\right)", 2.0);
        close("2\\pi", 2.0 * std::f64::consts::PI);
        assert_eq!(eval("x+1"), None);
        assert_eq!(eval("1/0"), None);
        assert_eq!(eval("\\sqrt{-1}"), None);
        assert_eq!(eval("(1+2"), None);
        assert_eq!(eval(""), None);
    }
}
