//! The one-line JAAS configurations of `sasl.jaas.config`, as Kafka's `JaasConfig` reads
//! them: `<LoginModule class> <flag> [<option>=<value>]... ;` where a value is a word or a
//! double-quoted string (with `\"` and `\\` escapes).

use std::collections::BTreeMap;
use std::fmt;

/// One login module entry.
#[derive(Clone, PartialEq, Eq)]
pub struct JaasEntry {
    pub login_module: String,
    pub flag: String,
    pub options: BTreeMap<String, String>,
}

impl fmt::Debug for JaasEntry {
    /// Options hold passwords: only their names are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JaasEntry")
            .field("login_module", &self.login_module)
            .field("flag", &self.flag)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Equals,
    Semicolon,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '=' => {
                chars.next();
                tokens.push(Token::Equals);
            }
            ';' => {
                chars.next();
                tokens.push(Token::Semicolon);
            }
            '"' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated quoted value".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped) => value.push(escaped),
                            None => return Err("unterminated quoted value".into()),
                        },
                        Some(other) => value.push(other),
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '=' || c == ';' || c == '"' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// Parses a `sasl.jaas.config` value holding exactly one login module, as Kafka requires
/// of the property.
pub fn parse(text: &str) -> Result<JaasEntry, String> {
    let tokens = tokenize(text)?;
    let mut it = tokens.into_iter();
    let Some(Token::Word(login_module)) = it.next() else {
        return Err("expected a login module class name".into());
    };
    let flag = match it.next() {
        Some(Token::Word(flag)) => flag.to_ascii_lowercase(),
        _ => return Err(format!("expected a control flag after {login_module}")),
    };
    if !["required", "requisite", "sufficient", "optional"].contains(&flag.as_str()) {
        return Err(format!("invalid control flag '{flag}'"));
    }
    let mut options = BTreeMap::new();
    loop {
        match it.next() {
            Some(Token::Semicolon) => break,
            Some(Token::Word(key)) => {
                if it.next() != Some(Token::Equals) {
                    return Err(format!("expected = after option {key}"));
                }
                let value = match it.next() {
                    Some(Token::Word(v) | Token::Quoted(v)) => v,
                    _ => return Err(format!("expected a value for option {key}")),
                };
                if options.insert(key.clone(), value).is_some() {
                    return Err(format!("option {key} is given twice"));
                }
            }
            Some(_) => return Err("expected an option name or ';'".into()),
            None => return Err("the login module entry must end with ';'".into()),
        }
    }
    if it.next().is_some() {
        return Err("exactly one login module is allowed".into());
    }
    Ok(JaasEntry { login_module, flag, options })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafkas_plain_example() {
        let entry = parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";"#,
        )
        .unwrap();
        assert_eq!(entry.login_module, "org.apache.kafka.common.security.plain.PlainLoginModule");
        assert_eq!(entry.flag, "required");
        assert_eq!(entry.options["user_alice"], "alice-secret");
        assert_eq!(entry.options.len(), 4);
    }

    #[test]
    fn quoted_values_keep_spaces_semicolons_and_escapes() {
        let entry = parse("M required\n  user_bob=\"p w;=\\\"x\\\\\" plain=word ;").unwrap();
        assert_eq!(entry.options["user_bob"], "p w;=\"x\\");
        assert_eq!(entry.options["plain"], "word");
        assert!(!format!("{entry:?}").contains("p w"), "passwords stay out of Debug");
    }

    #[test]
    fn malformed_lines_are_refused() {
        for bad in [
            "",
            "M",
            "M required",
            "M required a=\"b\"",
            "M always a=b;",
            "M required a=\"unterminated;",
            "M required a b;",
            "M required a=b; N required;",
            "M required a=1 a=2;",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
