//! Lexer and recursive-descent parser for selectors.
//!
//! Grammar (`&&` binds tighter than `||`):
//!
//! ```text
//! selector   = [ or ]
//! or         = and { "||" and }
//! and        = unary { "&&" unary }
//! unary      = "!" unary | primary
//! primary    = "(" or ")" | "all()" | "global()" | "has(" key ")" | key comparison
//! comparison = ("==" | "!=" | "contains" | "starts with" | "ends with") string
//!            | ["not"] "in" "{" [ string { "," string } ] "}"
//! ```
//!
//! As in Calico's tokenizer, the whitespace inside the two-word operators is optional:
//! `starts with`/`startswith`, `ends with`/`endswith` and `not in`/`notin` are the same.

use std::collections::BTreeSet;

use super::ast::Expr;
use super::{SelectorError, MAX_DEPTH, MAX_KEY_LEN};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok<'a> {
    Ident(&'a str),
    Str(&'a str),
    EqEq,
    NotEq,
    Bang,
    AndAnd,
    OrOr,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    End,
}

impl Tok<'_> {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("{s:?}"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::EqEq => "'=='".into(),
            Tok::NotEq => "'!='".into(),
            Tok::Bang => "'!'".into(),
            Tok::AndAnd => "'&&'".into(),
            Tok::OrOr => "'||'".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::LBrace => "'{'".into(),
            Tok::RBrace => "'}'".into(),
            Tok::Comma => "','".into(),
            Tok::End => "end of input".into(),
        }
    }
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-')
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    /// The current token and its start offset.
    tok: Tok<'a>,
    tok_pos: usize,
}

pub(super) fn parse(text: &str) -> Result<Expr, SelectorError> {
    let mut p = Parser {
        text,
        pos: 0,
        tok: Tok::End,
        tok_pos: 0,
    };
    p.advance()?;
    if p.tok == Tok::End {
        return Ok(Expr::All);
    }
    let e = p.or(0)?;
    if p.tok != Tok::End {
        return Err(p.expected("'&&', '||' or end of input"));
    }
    Ok(e)
}

impl<'a> Parser<'a> {
    fn error(&self, position: usize, expected: &str, found: String) -> SelectorError {
        SelectorError {
            text: self.text.to_string(),
            position,
            expected: expected.to_string(),
            found,
        }
    }

    fn expected(&self, what: &str) -> SelectorError {
        self.error(self.tok_pos, what, self.tok.describe())
    }

    /// Reads the next token into `self.tok`.
    fn advance(&mut self) -> Result<(), SelectorError> {
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() && bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        self.tok_pos = self.pos;
        let Some(&b) = bytes.get(self.pos) else {
            self.tok = Tok::End;
            return Ok(());
        };
        let two = bytes.get(self.pos + 1).copied();
        let (tok, len) = match (b, two) {
            (b'=', Some(b'=')) => (Tok::EqEq, 2),
            (b'!', Some(b'=')) => (Tok::NotEq, 2),
            (b'&', Some(b'&')) => (Tok::AndAnd, 2),
            (b'|', Some(b'|')) => (Tok::OrOr, 2),
            (b'!', _) => (Tok::Bang, 1),
            (b'(', _) => (Tok::LParen, 1),
            (b')', _) => (Tok::RParen, 1),
            (b'{', _) => (Tok::LBrace, 1),
            (b'}', _) => (Tok::RBrace, 1),
            (b',', _) => (Tok::Comma, 1),
            (b'"' | b'\'', _) => {
                let start = self.pos + 1;
                let Some(len) = self.text[start..].find(b as char) else {
                    return Err(self.error(
                        self.text.len(),
                        &format!("closing {}", b as char),
                        "end of input".into(),
                    ));
                };
                self.tok = Tok::Str(&self.text[start..start + len]);
                self.pos = start + len + 1;
                return Ok(());
            }
            (b, _) if is_key_byte(b) => {
                let len = bytes[self.pos..]
                    .iter()
                    .take_while(|b| is_key_byte(**b))
                    .count();
                let ident = &self.text[self.pos..self.pos + len];
                if len > MAX_KEY_LEN {
                    return Err(self.error(
                        self.pos,
                        &format!("a label key of at most {MAX_KEY_LEN} characters"),
                        format!("one of {len} characters"),
                    ));
                }
                (Tok::Ident(ident), len)
            }
            _ => {
                let c = self.text[self.pos..].chars().next().unwrap_or('?');
                return Err(self.error(
                    self.pos,
                    "a label key, string, operator or parenthesis",
                    format!("{c:?}"),
                ));
            }
        };
        self.tok = tok;
        self.pos += len;
        Ok(())
    }

    fn eat(&mut self, tok: Tok<'_>, what: &str) -> Result<(), SelectorError> {
        if self.tok != tok {
            return Err(self.expected(what));
        }
        self.advance()
    }

    fn eat_word(&mut self, word: &str) -> Result<(), SelectorError> {
        if self.tok != Tok::Ident(word) {
            return Err(self.expected(&format!("{word:?}")));
        }
        self.advance()
    }

    fn string(&mut self) -> Result<String, SelectorError> {
        match self.tok {
            Tok::Str(s) => {
                let s = s.to_string();
                self.advance()?;
                Ok(s)
            }
            _ => Err(self.expected("a quoted string")),
        }
    }

    fn or(&mut self, depth: usize) -> Result<Expr, SelectorError> {
        let mut terms = vec![self.and(depth)?];
        while self.tok == Tok::OrOr {
            self.advance()?;
            terms.push(self.and(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().expect("one term")
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, SelectorError> {
        let mut terms = vec![self.unary(depth)?];
        while self.tok == Tok::AndAnd {
            self.advance()?;
            terms.push(self.unary(depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().expect("one term")
        } else {
            Expr::And(terms)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, SelectorError> {
        if depth > MAX_DEPTH {
            return Err(self.error(
                self.tok_pos,
                &format!("at most {MAX_DEPTH} levels of nesting"),
                "deeper nesting".into(),
            ));
        }
        if self.tok == Tok::Bang {
            self.advance()?;
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, SelectorError> {
        let key = match self.tok {
            Tok::LParen => {
                self.advance()?;
                let e = self.or(depth + 1)?;
                self.eat(Tok::RParen, "')'")?;
                return Ok(e);
            }
            Tok::Ident(key) => key,
            _ => return Err(self.expected("a label key, '!', '(', has(), all() or global()")),
        };
        self.advance()?;
        if self.tok == Tok::LParen {
            match key {
                "all" | "global" => {
                    self.advance()?;
                    self.eat(Tok::RParen, "')'")?;
                    return Ok(if key == "all" {
                        Expr::All
                    } else {
                        Expr::Global
                    });
                }
                "has" => {
                    self.advance()?;
                    let Tok::Ident(k) = self.tok else {
                        return Err(self.expected("a label key"));
                    };
                    self.advance()?;
                    self.eat(Tok::RParen, "')'")?;
                    return Ok(Expr::Has(k.to_string()));
                }
                _ => {}
            }
        }
        let key = key.to_string();
        match self.tok {
            Tok::EqEq => {
                self.advance()?;
                Ok(Expr::Eq(key, self.string()?))
            }
            Tok::NotEq => {
                self.advance()?;
                Ok(Expr::Ne(key, self.string()?))
            }
            Tok::Ident("in") => {
                self.advance()?;
                Ok(Expr::In(key, self.set()?))
            }
            Tok::Ident("not") => {
                self.advance()?;
                self.eat_word("in")?;
                Ok(Expr::NotIn(key, self.set()?))
            }
            Tok::Ident("notin") => {
                self.advance()?;
                Ok(Expr::NotIn(key, self.set()?))
            }
            Tok::Ident("startswith") => {
                self.advance()?;
                Ok(Expr::StartsWith(key, self.string()?))
            }
            Tok::Ident("endswith") => {
                self.advance()?;
                Ok(Expr::EndsWith(key, self.string()?))
            }
            Tok::Ident("contains") => {
                self.advance()?;
                Ok(Expr::Contains(key, self.string()?))
            }
            Tok::Ident("starts") => {
                self.advance()?;
                self.eat_word("with")?;
                Ok(Expr::StartsWith(key, self.string()?))
            }
            Tok::Ident("ends") => {
                self.advance()?;
                self.eat_word("with")?;
                Ok(Expr::EndsWith(key, self.string()?))
            }
            _ => Err(self
                .expected("'==', '!=', 'in', 'not in', 'contains', 'starts with' or 'ends with'")),
        }
    }

    fn set(&mut self) -> Result<BTreeSet<String>, SelectorError> {
        self.eat(Tok::LBrace, "'{'")?;
        let mut values = BTreeSet::new();
        if self.tok == Tok::RBrace {
            self.advance()?;
            return Ok(values);
        }
        loop {
            values.insert(self.string()?);
            match self.tok {
                Tok::Comma => self.advance()?,
                Tok::RBrace => {
                    self.advance()?;
                    return Ok(values);
                }
                _ => return Err(self.expected("',' or '}'")),
            }
        }
    }
}
