//! The recipe as TOML holds it: serde structs with every key optional and spanned, unknown keys
//! rejected. Deserialization recovers from each error by dropping the offending key and trying
//! again, so one run reports every unknown key and wrong type, not just the first.

use crate::diagnostic::Diagnostic;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub type Opt<T> = Option<Spanned<T>>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRecipe {
    pub lab: Opt<RawLab>,
    pub os: Opt<RawOs>,
    pub server: Opt<RawServer>,
    pub client: Opt<Vec<Spanned<RawClient>>>,
    pub eeprom: Opt<EepromTable>,
    pub firmware: Opt<RawFirmware>,
    pub pc: Opt<RawPc>,
    pub menu: Opt<Vec<Spanned<RawMenu>>>,
    pub debian: Opt<RawDebian>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPc {
    pub bios: Opt<String>,
    pub uefi: Opt<String>,
    pub timeout: Opt<i64>,
    pub default: Opt<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMenu {
    pub label: Opt<String>,
    pub kind: Opt<String>,
    pub files: Opt<Vec<Spanned<String>>>,
    pub append: Opt<String>,
    pub firmware: Opt<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDebian {
    pub mirror: Opt<String>,
    pub suite: Opt<String>,
    pub components: Opt<Vec<Spanned<String>>>,
    pub keyring: Opt<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFirmware {
    pub url: Opt<String>,
    pub sha256: Opt<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLab {
    pub name: Opt<String>,
    pub seed: Opt<String>,
    pub source_date_epoch: Opt<i64>,
    pub root: Opt<String>,
    pub ssh_host_keys: Opt<String>,
    pub overlays: Opt<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOs {
    pub source: Opt<String>,
    pub packages: Opt<Vec<Spanned<String>>>,
    pub catalog: Opt<String>,
    pub url: Opt<String>,
    pub sha256: Opt<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub hostname: Opt<String>,
    pub interface: Opt<String>,
    pub address: Opt<String>,
    pub gateway: Opt<String>,
    pub dns: Opt<Vec<Spanned<String>>>,
    pub domain: Opt<String>,
    pub dhcp: Opt<String>,
    pub answer: Opt<String>,
    pub range: Opt<String>,
    pub ssh_keys: Opt<Vec<Spanned<String>>>,
    pub user: Opt<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    pub name: Opt<String>,
    pub model: Opt<String>,
    pub serial: Opt<String>,
    pub mac: Opt<String>,
    pub address: Opt<String>,
    pub cmdline: Opt<String>,
    pub config_txt: Opt<String>,
    pub boot: Opt<String>,
    pub eeprom: Opt<EepromTable>,
}

/// `[eeprom]` keys are the bootloader's own names (`BOOT_ORDER = 0xf21`), so they stay a map.
pub type EepromTable = BTreeMap<Spanned<String>, Spanned<EepromValue>>;

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EepromValue {
    Int(i64),
    Bool(bool),
    Text(String),
}

/// Parse `source`. Syntax errors end the parse; every other error is reported and its key
/// dropped, and what remains is returned for validation.
pub fn parse(source: &str) -> (Option<RawRecipe>, Vec<Diagnostic>) {
    let (doc, syntax) = DeTable::parse_recoverable(source);
    if !syntax.is_empty() {
        let diags = syntax
            .into_iter()
            .map(|e| Diagnostic::error(e.span(), format!("TOML syntax: {}", e.message().trim_end())))
            .collect();
        return (None, diags);
    }
    let mut doc = doc.into_inner();
    let mut diags = Vec::new();
    drop_bad_eeprom_values(&mut doc, &mut diags);
    // Each round drops at least one key, so this ends; the bound is a second guard. A round
    // costs the whole document, so each drops every key of its kind it can (all unknown keys of
    // a table at once; `[eeprom]` values are checked above, one by one).
    for _ in 0..=count_entries(&doc) {
        let value = Spanned::new(0..source.len(), DeValue::Table(doc.clone()));
        match RawRecipe::deserialize(toml::de::ValueDeserializer::from(value)) {
            Ok(raw) => return (Some(raw), diags),
            Err(e) => {
                let Some(span) = e.span() else {
                    diags.push(Diagnostic::error(None, e.message().to_string()));
                    return (None, diags);
                };
                let path = remove_entry_at(&mut doc, &span);
                diags.push(explain(e.message(), span, &path));
                if path.is_empty() {
                    return (None, diags);
                }
                drop_other_unknown_keys(&mut doc, e.message(), &path, &mut diags);
            }
        }
    }
    (None, diags)
}

/// Check every `[eeprom]` and `[client.eeprom]` value on its own, dropping and reporting those
/// that are not a bootloader setting, so a table of many bad values costs one pass, not one
/// retry of the whole document per value.
fn drop_bad_eeprom_values(doc: &mut DeTable, diags: &mut Vec<Diagnostic>) {
    let mut check = |table: &mut DeTable, path: Vec<String>| {
        let bad: Vec<_> = table
            .iter()
            .filter_map(|(key, value)| {
                let e = EepromValue::deserialize(toml::de::ValueDeserializer::from(value.clone())).err()?;
                let path = [path.clone(), vec![key.get_ref().to_string()]].concat();
                diags.push(explain(e.message(), e.span().unwrap_or(value.span()), &path));
                Some(key.clone())
            })
            .collect();
        for key in bad {
            table.remove(&key);
        }
    };
    for (name, value) in doc.iter_mut() {
        match (name.get_ref().as_ref(), value.get_mut()) {
            ("eeprom", DeValue::Table(t)) => check(t, vec!["eeprom".into()]),
            ("client", DeValue::Array(items)) => {
                for (i, item) in items.iter_mut().enumerate() {
                    if let DeValue::Table(c) = item.get_mut()
                        && let Some(DeValue::Table(t)) = c.get_mut("eeprom").map(|v| v.get_mut())
                    {
                        check(t, vec!["client".into(), (i + 1).to_string(), "eeprom".into()]);
                    }
                }
            }
            _ => {}
        }
    }
}

/// After an unknown key at `path`, drop and report every other unknown key of the same table
/// (serde's message lists the keys it knows).
fn drop_other_unknown_keys(doc: &mut DeTable, message: &str, path: &[String], diags: &mut Vec<Diagnostic>) {
    let Some(rest) = message.strip_prefix("unknown field `") else { return };
    let Some((_, expected)) = rest.split_once('`') else { return };
    let allowed: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let Some(table) = table_at(doc, &path[..path.len() - 1]) else { return };
    let dropped: Vec<_> = table.keys().filter(|k| !allowed.contains(&k.get_ref().as_ref())).cloned().collect();
    for spanned in dropped {
        table.remove(&spanned);
        let (key, span) = (spanned.get_ref().to_string(), spanned.span());
        let path = [&path[..path.len() - 1], std::slice::from_ref(&key)].concat();
        diags.push(explain(&format!("unknown field `{key}`{expected}"), span, &path));
    }
}

/// The table at `path` (`["client", "2"]` is the second [[client]]), as remove_entry_at names it.
fn table_at<'a, 'i>(doc: &'a mut DeTable<'i>, path: &[String]) -> Option<&'a mut DeTable<'i>> {
    let mut table = doc;
    let mut i = 0;
    while i < path.len() {
        let value = table.get_mut(path[i].as_str())?.get_mut();
        table = match value {
            DeValue::Table(t) => t,
            DeValue::Array(items) => {
                let n: usize = path.get(i + 1)?.parse().ok()?;
                i += 1;
                match items.get_mut(n.checked_sub(1)?)?.get_mut() {
                    DeValue::Table(t) => t,
                    _ => return None,
                }
            }
            _ => return None,
        };
        i += 1;
    }
    Some(table)
}

fn count_entries(table: &DeTable) -> usize {
    table
        .values()
        .map(|v| {
            1 + match v.get_ref() {
                DeValue::Table(t) => count_entries(t),
                DeValue::Array(a) => {
                    a.iter().map(|e| if let DeValue::Table(t) = e.get_ref() { count_entries(t) } else { 0 }).sum()
                }
                _ => 0,
            }
        })
        .sum()
}

/// Remove the innermost key whose key or value contains `span`; return its path
/// (`["client", "2", "mac"]`), or an empty path if no key contains it. Tables are searched
/// even when their own span does not cover the error: an array of tables spans only its
/// first header.
fn remove_entry_at(table: &mut DeTable, span: &std::ops::Range<usize>) -> Vec<String> {
    let inside = |outer: std::ops::Range<usize>| outer.start <= span.start && span.end <= outer.end;
    let keys: Vec<_> = table.keys().cloned().collect();
    for key in &keys {
        let name = key.get_ref().to_string();
        let value = table.get_mut(key).expect("key listed above");
        let deeper = match value.get_mut() {
            DeValue::Table(inner) => {
                Some(remove_entry_at(inner, span)).filter(|p| !p.is_empty()).map(|p| [vec![name.clone()], p].concat())
            }
            DeValue::Array(items) => items.iter_mut().enumerate().find_map(|(i, item)| match item.get_mut() {
                DeValue::Table(inner) => Some(remove_entry_at(inner, span))
                    .filter(|p| !p.is_empty())
                    .map(|p| [vec![name.clone(), (i + 1).to_string()], p].concat()),
                _ => None,
            }),
            _ => None,
        };
        if let Some(path) = deeper {
            return path;
        }
    }
    for key in keys {
        let hit = table.get(&key).is_some_and(|v| inside(key.span()) || inside(v.span()));
        if hit {
            table.remove(&key);
            return vec![key.get_ref().to_string()];
        }
    }
    Vec::new()
}

/// Where a path is, in the words of the file: `[server]`, `[[client]] #2`, the top level.
fn place(path: &[String]) -> String {
    match path {
        [] | [_] => "at the top level".into(),
        [section, n, _, ..] if (section == "client" || section == "menu") && n.parse::<usize>().is_ok() => {
            format!("in [[{section}]] #{n}")
        }
        [section, .., _] => format!("in [{section}]"),
    }
}

/// Turn serde's message into one that says where and what to write instead.
fn explain(message: &str, span: std::ops::Range<usize>, path: &[String]) -> Diagnostic {
    let key = path.last().map(String::as_str).unwrap_or("?");
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let allowed: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let nearest = allowed
            .iter()
            .map(|k| (strsim::jaro_winkler(field, k), *k))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .filter(|(score, _)| *score > 0.8);
        let help = match nearest {
            Some((_, k)) => format!("did you mean `{k}`? (keys here: {})", allowed.join(", ")),
            None => format!("keys here: {}; see recipes/README.md", allowed.join(", ")),
        };
        return Diagnostic::error(span, format!("unknown key `{field}` {}", place(path))).help(help);
    }
    if let [section] = path
        && (section == "client" || section == "menu")
        && message.contains("expected a sequence")
    {
        return Diagnostic::error(span, format!("`{section}` must be a list of tables"))
            .help(format!("write [[{section}]] (double brackets) before each {section}"));
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, "another type"));
        let expected = match expected {
            "i64" => "an integer",
            e if e.starts_with("struct ") || e == "a map" => "a table",
            e => e,
        };
        return Diagnostic::error(span, format!("`{key}` {}: expected {expected}, found {found}", place(path)));
    }
    if message.contains("did not match any variant of untagged enum EepromValue") {
        return Diagnostic::error(
            span,
            format!("`{key}` {}: a bootloader setting is a string or an integer", place(path)),
        )
        .help(format!("write e.g. {key} = \"value\" or {key} = 0xf21"));
    }
    Diagnostic::error(span, format!("`{key}` {}: {message}", place(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(source: &str) -> Vec<String> {
        parse(source).1.into_iter().map(|d| d.message).collect()
    }

    #[test]
    fn every_bad_key_is_reported_in_one_run() {
        let src = "[lab]\nnmae = \"x\"\nseed = 5\n[server]\ndhpc = \"proxy\"\n[[client]]\nname = \"a\"\n[[client]]\nmodle = \"pi4\"\n";
        let (raw, diags) = parse(src);
        let msgs: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert!(msgs.contains(&"unknown key `nmae` in [lab]"));
        assert!(msgs.contains(&"`seed` in [lab]: expected a string, found integer `5`"));
        assert!(msgs.contains(&"unknown key `dhpc` in [server]"));
        assert!(msgs.contains(&"unknown key `modle` in [[client]] #2"));
        let help = diags.iter().find(|d| d.message.contains("nmae")).unwrap().help.clone().unwrap();
        assert!(help.starts_with("did you mean `name`?"), "{help}");
        // What was valid survives for validation.
        let raw = raw.unwrap();
        assert_eq!(raw.client.unwrap().get_ref().len(), 2);
    }

    #[test]
    fn spans_point_at_the_key_or_value() {
        let src = "[lab]\nname = 5\n";
        let (_, diags) = parse(src);
        assert_eq!(&src[diags[0].span.clone().unwrap()], "5");
    }

    #[test]
    fn single_bracket_client_gets_a_hint() {
        let (_, diags) = parse("[client]\nname = \"a\"\n");
        assert_eq!(diags[0].help.as_deref(), Some("write [[client]] (double brackets) before each client"));
    }

    #[test]
    fn syntax_errors_stop_the_parse() {
        let (raw, diags) = parse("[lab\nname = \"x\"\n");
        assert!(raw.is_none());
        assert!(diags[0].message.starts_with("TOML syntax"));
        assert!(diags[0].span.is_some());
    }

    #[test]
    fn eeprom_values_take_strings_integers_and_booleans() {
        let (raw, diags) = parse("[eeprom]\nBOOT_ORDER = 0xf21\nTFTP_IP = \"10.0.0.1\"\nBOOT_UART = true\nX = 1.5\n");
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.contains("string or an integer"));
        let table = raw.unwrap().eeprom.unwrap().into_inner();
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn many_bad_keys_are_each_reported_in_one_pass() {
        let mut src = String::from("[lab]\n");
        for i in 0..50 {
            src.push_str(&format!("nmae{i} = 1\n"));
        }
        src.push_str("name = \"t\"\n[eeprom]\nBOOT_UART = 1\n");
        for i in 0..50 {
            src.push_str(&format!("K{i} = 1.5\n"));
        }
        src.push_str("[[client]]\nname = \"a\"\n[client.eeprom]\nX = [1]\n");
        let (raw, diags) = parse(&src);
        assert_eq!(diags.len(), 101, "{diags:?}");
        let unknown = diags.iter().filter(|d| d.message.starts_with("unknown key `nmae")).count();
        assert_eq!(unknown, 50);
        let d = diags.iter().find(|d| d.message == "unknown key `nmae7` in [lab]").unwrap();
        assert_eq!(&src[d.span.clone().unwrap()], "nmae7");
        assert!(d.help.as_deref().unwrap().starts_with("did you mean `name`?"), "{:?}", d.help);
        let d = diags.iter().find(|d| d.message.starts_with("`K7` in [eeprom]")).unwrap();
        assert_eq!(&src[d.span.clone().unwrap()], "1.5");
        assert!(diags.iter().any(|d| d.message.starts_with("`X` in [[client]] #1: a bootloader setting")));
        let raw = raw.unwrap();
        assert_eq!(raw.lab.unwrap().into_inner().name.unwrap().into_inner(), "t");
        assert_eq!(raw.eeprom.unwrap().into_inner().len(), 1);
    }

    #[test]
    fn empty_recipe_parses() {
        assert!(messages("").is_empty());
        assert!(parse("").0.is_some());
    }
}
