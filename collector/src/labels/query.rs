//! `roar search` predicates: `metrics.accuracy>0.9 AND stage=baseline`.
//!
//! Grammar: clauses joined by `AND` (or plain juxtaposition), `OR` and
//! `NOT`, with parentheses; a clause is `KEY OP VALUE` (`= != > >= < <=`)
//! or `has:KEY`. Values are typed as in `label set`: `0.9` is a number,
//! `true` a boolean, `"10"` or `baseline` a string. A comparison matches a
//! label of the same type only: numbers compare as numbers, strings as
//! strings (byte order), booleans only with `=` and `!=`; so `"10" > 9` is
//! false, and `stage=10` does not match the string label `stage="10"`.
//! `KEY != V` needs the key to be present with another value; `NOT KEY=V`
//! also matches records without the key. `has:KEY` matches a value at KEY
//! or nested labels under it.

use serde_json::Value;

use super::{key_parts, parse_value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    pub fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Has(String),
    Cmp { key: String, op: Op, value: Value },
}

/// A bad predicate: what is wrong, and where (a character offset).
#[derive(Debug, PartialEq)]
pub struct ParseError {
    pub at: usize,
    pub message: String,
}

impl ParseError {
    /// One line naming the position: `at column N: message`.
    pub fn describe(&self, query: &str) -> String {
        let near: String = query.chars().skip(self.at).take(20).collect();
        let near = if near.is_empty() {
            "the end".to_string()
        } else {
            format!("{near:?}")
        };
        format!("column {} (at {near}): {}", self.at + 1, self.message)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    And,
    Or,
    Not,
    Has(String),
    /// A key, value or anything else not an operator.
    Word(String),
    Op(Op),
}

fn lex(q: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let chars: Vec<char> = q.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let word_char = |c: char| !c.is_whitespace() && !"()=!<>".contains(c);
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = match c {
            '(' => {
                i += 1;
                Tok::Open
            }
            ')' => {
                i += 1;
                Tok::Close
            }
            '=' | '!' | '<' | '>' => {
                let two = chars.get(i + 1) == Some(&'=');
                let op = match (c, two) {
                    ('=', _) => Op::Eq,
                    ('!', true) => Op::Ne,
                    ('>', true) => Op::Ge,
                    ('>', false) => Op::Gt,
                    ('<', true) => Op::Le,
                    ('<', false) => Op::Lt,
                    _ => {
                        return Err(ParseError {
                            at: i,
                            message: "expected an operator (= != > >= < <=)".into(),
                        })
                    }
                };
                i += if two && c != '=' { 2 } else { 1 };
                Tok::Op(op)
            }
            '"' | '\'' => {
                let end =
                    chars[i + 1..]
                        .iter()
                        .position(|&d| d == c)
                        .ok_or_else(|| ParseError {
                            at: i,
                            message: "unterminated quote".into(),
                        })?;
                let text: String = chars[i..i + end + 2].iter().collect();
                i += end + 2;
                Tok::Word(text)
            }
            _ => {
                while i < chars.len() && word_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match word.as_str() {
                    "AND" | "and" => Tok::And,
                    "OR" | "or" => Tok::Or,
                    "NOT" | "not" => Tok::Not,
                    w => match w.strip_prefix("has:") {
                        Some(key) => Tok::Has(key.to_string()),
                        None => Tok::Word(word),
                    },
                }
            }
        };
        toks.push((start, tok));
    }
    Ok(toks)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(at, _)| *at)
    }

    fn fail<T>(&self, message: &str) -> Result<T, ParseError> {
        Err(ParseError {
            at: self.at(),
            message: message.to_string(),
        })
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not()?;
        loop {
            match self.peek() {
                Some(Tok::And) => self.pos += 1,
                // Juxtaposed clauses: an implicit AND.
                Some(Tok::Word(_) | Tok::Has(_) | Tok::Not | Tok::Open) => {}
                _ => return Ok(left),
            }
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.peek() == Some(&Tok::Not) {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn key(&self, key: &str) -> Result<String, ParseError> {
        key_parts(key).map_err(|message| ParseError {
            at: self.at(),
            message,
        })?;
        Ok(key.to_string())
    }

    fn atom(&mut self) -> Result<Expr, ParseError> {
        match self.peek().cloned() {
            Some(Tok::Open) => {
                self.pos += 1;
                let inner = self.or()?;
                if self.peek() != Some(&Tok::Close) {
                    return self.fail("expected )");
                }
                self.pos += 1;
                Ok(inner)
            }
            Some(Tok::Has(key)) => {
                let key = self.key(&key)?;
                self.pos += 1;
                Ok(Expr::Has(key))
            }
            Some(Tok::Word(key)) => {
                let key = self.key(&key)?;
                self.pos += 1;
                let Some(Tok::Op(op)) = self.peek().cloned() else {
                    return self.fail("expected an operator (= != > >= < <=) after the key");
                };
                self.pos += 1;
                let Some(Tok::Word(text)) = self.peek().cloned() else {
                    return self.fail("expected a value");
                };
                let value = parse_value(&text);
                if value.is_boolean() && !matches!(op, Op::Eq | Op::Ne) {
                    return self.fail("true and false compare only with = and !=");
                }
                self.pos += 1;
                Ok(Expr::Cmp { key, op, value })
            }
            Some(_) => self.fail("expected KEY OP VALUE, has:KEY, NOT or ("),
            None => self.fail("expected a clause"),
        }
    }
}

pub fn parse(query: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        toks: lex(query)?,
        pos: 0,
        end: query.chars().count(),
    };
    let expr = p.or()?;
    if p.pos < p.toks.len() {
        return p.fail("unexpected here (a missing AND/OR, or an extra ))");
    }
    Ok(expr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cmp(key: &str, op: Op, value: Value) -> Expr {
        Expr::Cmp {
            key: key.into(),
            op,
            value,
        }
    }

    #[test]
    fn precedence_types_and_implicit_and() {
        let e = parse("metrics.accuracy>0.9 AND stage=baseline OR NOT has:x").unwrap();
        assert_eq!(
            e,
            Expr::Or(
                Box::new(Expr::And(
                    Box::new(cmp("metrics.accuracy", Op::Gt, json!(0.9))),
                    Box::new(cmp("stage", Op::Eq, json!("baseline")))
                )),
                Box::new(Expr::Not(Box::new(Expr::Has("x".into()))))
            )
        );
        assert_eq!(
            parse("(a >= 3 or b != \"3\") c<=1").unwrap(),
            Expr::And(
                Box::new(Expr::Or(
                    Box::new(cmp("a", Op::Ge, json!(3))),
                    Box::new(cmp("b", Op::Ne, json!("3")))
                )),
                Box::new(cmp("c", Op::Le, json!(1)))
            )
        );
        assert_eq!(parse("ok=true").unwrap(), cmp("ok", Op::Eq, json!(true)));
    }

    #[test]
    fn errors_point_at_the_offending_position() {
        let cases = [
            ("stage baseline", 6, "operator"),
            ("a>", 2, "expected a value"),
            ("(a=1", 4, "expected )"),
            ("a=1)", 3, "unexpected"),
            ("a>true", 2, "compare only"),
            ("a=\"x", 2, "unterminated"),
            ("bad key!=1", 4, "operator"),
            ("", 0, "expected a clause"),
        ];
        for (q, at, msg) in cases {
            let e = parse(q).unwrap_err();
            assert_eq!(e.at, at, "{q}: {e:?}");
            assert!(e.message.contains(msg), "{q}: {e:?}");
        }
        assert!(parse("a=1 AND")
            .unwrap_err()
            .describe("a=1 AND")
            .starts_with("column 8 (at the end)"));
    }
}
