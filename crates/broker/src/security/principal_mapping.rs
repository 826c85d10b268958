//! `ssl.principal.mapping.rules` (KIP-371), as Kafka's `SslPrincipalMapper` applies them to
//! a client certificate's distinguished name (RFC 2253 form) to name its principal.
//!
//! The value is a comma-separated list of `DEFAULT` (the name unchanged) and
//! `RULE:<pattern>/<replacement>/[L|U]` items, tried in order; the first rule whose Java-style
//! regular expression matches the *whole* name gives the principal: every match replaced by
//! the replacement (`$1` for a group), then lower- or upper-cased with `L` / `U`. A `/` inside
//! a pattern or replacement is written `\/`. A name no rule matches fails the connection, as
//! in Kafka. Patterns are compiled by the `regex` crate, which reads the usual Java syntax
//! (groups, lazy quantifiers, classes) but not look-around or back-references; a pattern it
//! cannot compile refuses the configuration at start.

use std::fmt;

use regex::Regex;

enum Rule {
    Default,
    /// `whole` is the pattern anchored at both ends (Java's `matches()`).
    Replace {
        pattern: Regex,
        whole: Regex,
        replacement: String,
        lower: bool,
        upper: bool,
    },
}

/// The parsed rules of one listener.
pub struct PrincipalRules {
    rules: Vec<Rule>,
    text: String,
}

impl fmt::Debug for PrincipalRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Default for PrincipalRules {
    fn default() -> Self {
        PrincipalRules { rules: vec![Rule::Default], text: "DEFAULT".into() }
    }
}

/// Reads a `\`-escaped part of a rule up to its closing `/`; returns it (with `\/`
/// unescaped, other escapes kept for the regex) and the rest after the `/`.
fn until_slash(input: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = input.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return None,
            },
            '/' => return Some((out, &input[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// A Java `Matcher.replaceAll` replacement in the `regex` crate's syntax: `$n` groups,
/// `\x` a literal `x`.
fn java_replacement(java: &str) -> String {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

impl PrincipalRules {
    /// Parses the setting as Kafka's `SslPrincipalMapper.parseRules`.
    pub fn parse(value: &str) -> Result<Self, String> {
        let text = value.trim();
        let mut rules = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after).ok_or_else(|| format!("invalid rule: {rest}"))?;
                let (replacement, after) = until_slash(after).ok_or_else(|| format!("invalid rule: {rest}"))?;
                let (lower, upper, after) = match after.chars().next() {
                    Some('L') => (true, false, &after[1..]),
                    Some('U') => (false, true, &after[1..]),
                    _ => (false, false, after),
                };
                let whole =
                    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("invalid pattern {pattern}: {e}"))?;
                let pattern = Regex::new(&pattern).map_err(|e| format!("invalid pattern {pattern}: {e}"))?;
                let replacement = java_replacement(&replacement);
                rules.push(Rule::Replace { pattern, whole, replacement, lower, upper });
                rest = after;
            } else {
                return Err(format!("invalid rule: {rest}"));
            }
            // Then the next rule after a comma, or the end (anything else up to the comma
            // is ignored, as Kafka's parser does).
            rest = match rest.find(',') {
                Some(i) => rest[i + 1..].trim_start(),
                None => "",
            };
        }
        if rules.is_empty() {
            return Err("no rule given".into());
        }
        Ok(PrincipalRules { rules, text: text.to_string() })
    }

    /// The principal name for `dn`, or None when no rule applies.
    pub fn apply(&self, dn: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(dn.to_string()),
            Rule::Replace { pattern, whole, replacement, lower, upper } => {
                if !whole.is_match(dn) {
                    return None;
                }
                let replaced = pattern.replace_all(dn, replacement.as_str()).into_owned();
                Some(if *lower {
                    replaced.to_lowercase()
                } else if *upper {
                    replaced.to_uppercase()
                } else {
                    replaced
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_documented_examples() {
        let rules = PrincipalRules::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\n RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L, \
             RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            rules.apply("CN=kafka-service,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown").unwrap(),
            "kafka-service"
        );
        assert_eq!(
            rules.apply("CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Palo Alto,ST=CA,C=US").unwrap(),
            "duke@javasoft"
        );
        assert_eq!(rules.apply("OU=Engineering,CN=Adam.Smith,O=Example").unwrap(), "adam.smith");
        assert_eq!(rules.apply("O=NoCommonName").unwrap(), "O=NoCommonName");
    }

    #[test]
    fn upper_case_escapes_and_no_match() {
        let rules = PrincipalRules::parse("RULE:^CN=([^,]*),O=a\\/b$/svc-$1/U").unwrap();
        assert_eq!(rules.apply("CN=app,O=a/b").unwrap(), "SVC-APP");
        assert_eq!(rules.apply("CN=app,O=other"), None, "no DEFAULT: no principal");
        assert_eq!(PrincipalRules::default().apply("CN=x").unwrap(), "CN=x");
        for bad in ["", "RULE:^CN=(.*$/$1/", "RULE:abc", "NONSENSE"] {
            assert!(PrincipalRules::parse(bad).is_err(), "{bad}");
        }
    }
}
