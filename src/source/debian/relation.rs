//! Package relationship fields of binary packages (Debian Policy §7.1): `Depends`,
//! `Pre-Depends` and `Provides`, as `a (>= 1.0) | b:any, c`: groups separated by commas, each
//! a list of alternatives separated by `|`, each a package name with an optional architecture
//! qualifier (`:any`, `:native`, `:amd64`) and an optional version constraint.
//!
//! Architecture restriction lists (`[amd64]`) and build profiles (`<!nocheck>`) belong to source
//! packages' build relations; in a binary package's field they are refused, as dpkg refuses them.

use super::version::{Version, VersionError};
use std::fmt;

/// A version relation operator. dpkg still reads the obsolete `<` and `>` as `<=` and `>=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// `<<`
    Earlier,
    /// `<=`
    EarlierOrEqual,
    /// `=`
    Exactly,
    /// `>=`
    LaterOrEqual,
    /// `>>`
    Later,
}

impl Op {
    /// Whether `have` satisfies `op want`.
    pub fn holds(self, have: &Version, want: &Version) -> bool {
        let ord = have.cmp(want);
        match self {
            Op::Earlier => ord.is_lt(),
            Op::EarlierOrEqual => ord.is_le(),
            Op::Exactly => ord.is_eq(),
            Op::LaterOrEqual => ord.is_ge(),
            Op::Later => ord.is_gt(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Earlier => "<<",
            Op::EarlierOrEqual => "<=",
            Op::Exactly => "=",
            Op::LaterOrEqual => ">=",
            Op::Later => ">>",
        }
    }
}

/// One alternative: a package (or virtual package) name, maybe qualified and versioned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    pub name: String,
    /// The `:arch` qualifier: `any`, `native` or an architecture name.
    pub arch: Option<String>,
    pub version: Option<(Op, Version)>,
}

impl Relation {
    /// Whether a package of version `have` satisfies the version part.
    pub fn version_allows(&self, have: &Version) -> bool {
        self.version.as_ref().is_none_or(|(op, want)| op.holds(have, want))
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(arch) = &self.arch {
            write!(f, ":{arch}")?;
        }
        if let Some((op, v)) = &self.version {
            write!(f, " ({} {v})", op.as_str())?;
        }
        Ok(())
    }
}

/// A group of alternatives, any one of which satisfies it.
pub type Alternatives = Vec<Relation>;

/// `a | b` as written.
pub fn alternatives_text(group: &[Relation]) -> String {
    group.iter().map(Relation::to_string).collect::<Vec<_>>().join(" | ")
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RelationError {
    #[error("an empty relation (two commas or bars in a row)")]
    Empty,
    #[error("`{0}` is not a package name")]
    BadName(String),
    #[error("`{0}` is not an architecture qualifier")]
    BadArch(String),
    #[error("`{0}`: the version constraint has no closing parenthesis")]
    Unclosed(String),
    #[error("`{0}` is not a version relation (<<, <=, =, >=, >>)")]
    BadOp(String),
    #[error("`{0}`: {1}")]
    BadVersion(String, VersionError),
    #[error("`{0}`: unexpected text after the relation")]
    Trailing(String),
    #[error("`{0}`: architecture restrictions and build profiles are for source packages")]
    SourceOnly(String),
    #[error("`{0}`: Provides may only give an exact version (=)")]
    ProvidesOp(String),
    #[error("`{0}`: Provides has no alternatives")]
    ProvidesAlternative(String),
}

/// dpkg's package-name rule: starts with a letter or digit, then letters, digits and `+-.`.
pub fn valid_package_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

fn valid_arch(arch: &str) -> bool {
    !arch.is_empty() && arch.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn parse_one(text: &str) -> Result<Relation, RelationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(RelationError::Empty);
    }
    if text.contains(['[', ']']) {
        return Err(RelationError::SourceOnly(text.into()));
    }
    let name_end = text.find(|c: char| c.is_whitespace() || c == '(' || c == '<').unwrap_or(text.len());
    let (word, rest) = text.split_at(name_end);
    let (name, arch) = match word.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (word, None),
    };
    if !valid_package_name(name) {
        return Err(RelationError::BadName(word.into()));
    }
    if let Some(a) = arch.filter(|a| !valid_arch(a)) {
        return Err(RelationError::BadArch(a.into()));
    }
    let rest = rest.trim_start();
    let version = if let Some(inner) = rest.strip_prefix('(') {
        let Some((constraint, after)) = inner.split_once(')') else {
            return Err(RelationError::Unclosed(text.into()));
        };
        if !after.trim().is_empty() {
            return Err(if after.trim_start().starts_with(['[', '<']) {
                RelationError::SourceOnly(text.into())
            } else {
                RelationError::Trailing(text.into())
            });
        }
        let constraint = constraint.trim();
        let (op, version) = [
            ("<<", Op::Earlier),
            ("<=", Op::EarlierOrEqual),
            (">=", Op::LaterOrEqual),
            (">>", Op::Later),
            ("=", Op::Exactly),
            ("<", Op::EarlierOrEqual),
            (">", Op::LaterOrEqual),
        ]
        .into_iter()
        .find_map(|(s, op)| constraint.strip_prefix(s).map(|v| (op, v)))
        .ok_or_else(|| RelationError::BadOp(constraint.into()))?;
        let version = version.parse::<Version>().map_err(|e| RelationError::BadVersion(text.into(), e))?;
        Some((op, version))
    } else if rest.starts_with('<') {
        return Err(RelationError::SourceOnly(text.into()));
    } else if !rest.is_empty() {
        return Err(RelationError::Trailing(text.into()));
    } else {
        None
    };
    Ok(Relation { name: name.into(), arch: arch.map(str::to_string), version })
}

/// Parse a `Depends`-style field. An empty field has no groups.
pub fn parse_relations(text: &str) -> Result<Vec<Alternatives>, RelationError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',').map(|group| group.split('|').map(parse_one).collect()).collect()
}

/// Parse a `Provides` field: plain names, each maybe with `(= version)`.
pub fn parse_provides(text: &str) -> Result<Vec<Relation>, RelationError> {
    let mut out = Vec::new();
    for group in parse_relations(text)? {
        let [one] =
            <[Relation; 1]>::try_from(group).map_err(|g| RelationError::ProvidesAlternative(alternatives_text(&g)))?;
        if one.version.as_ref().is_some_and(|(op, _)| *op != Op::Exactly) {
            return Err(RelationError::ProvidesOp(one.to_string()));
        }
        out.push(one);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn groups_alternatives_versions_and_qualifiers() {
        let deps =
            parse_relations("libc6 (>= 2.34), a | b:any (<< 3~) ,\n c:amd64, d(=1:2-3),e (<2) | f (> 1)").unwrap();
        assert_eq!(deps.len(), 5);
        assert_eq!(
            deps[0],
            vec![Relation { name: "libc6".into(), arch: None, version: Some((Op::LaterOrEqual, v("2.34"))) }]
        );
        assert_eq!(alternatives_text(&deps[1]), "a | b:any (<< 3~)");
        assert_eq!(deps[2][0].arch.as_deref(), Some("amd64"));
        assert_eq!(deps[3][0].version, Some((Op::Exactly, v("1:2-3"))));
        // The obsolete single-character operators mean <= and >=.
        assert_eq!(deps[4][0].version, Some((Op::EarlierOrEqual, v("2"))));
        assert_eq!(deps[4][1].version, Some((Op::LaterOrEqual, v("1"))));
        assert!(parse_relations("").unwrap().is_empty());
        assert!(parse_relations(" \n ").unwrap().is_empty());
    }

    #[test]
    fn operators_hold_as_dpkg_says() {
        let (one, two) = (v("1"), v("2"));
        for (op, lt, eq, gt) in [
            (Op::Earlier, true, false, false),
            (Op::EarlierOrEqual, true, true, false),
            (Op::Exactly, false, true, false),
            (Op::LaterOrEqual, false, true, true),
            (Op::Later, false, false, true),
        ] {
            assert_eq!(op.holds(&one, &two), lt, "{op:?} 1 vs 2");
            assert_eq!(op.holds(&one, &one), eq, "{op:?} 1 vs 1");
            assert_eq!(op.holds(&two, &one), gt, "{op:?} 2 vs 1");
        }
        let r = &parse_relations("x (>= 1.0~rc1)").unwrap()[0][0];
        assert!(r.version_allows(&v("1.0")) && !r.version_allows(&v("1.0~beta")));
        assert!(parse_relations("x").unwrap()[0][0].version_allows(&v("0")));
    }

    #[test]
    fn damaged_fields_say_what_is_wrong() {
        use RelationError::*;
        assert_eq!(parse_relations("a,,b"), Err(Empty));
        assert_eq!(parse_relations("a | "), Err(Empty));
        assert_eq!(parse_relations("Ä"), Err(BadName("Ä".into())));
        assert_eq!(parse_relations("-a"), Err(BadName("-a".into())));
        assert_eq!(parse_relations("a:"), Err(BadArch("".into())));
        assert_eq!(parse_relations("a (>= 1"), Err(Unclosed("a (>= 1".into())));
        assert_eq!(parse_relations("a (~ 1)"), Err(BadOp("~ 1".into())));
        assert_eq!(parse_relations("a (>= )"), Err(BadVersion("a (>= )".into(), VersionError::Empty)));
        assert_eq!(parse_relations("a b"), Err(Trailing("a b".into())));
        assert_eq!(parse_relations("a (>= 1) x"), Err(Trailing("a (>= 1) x".into())));
        assert!(matches!(parse_relations("a [amd64]"), Err(SourceOnly(_))));
        assert!(matches!(parse_relations("a <!nocheck>"), Err(SourceOnly(_))));
        assert!(matches!(parse_relations("a (>= 1) [i386]"), Err(SourceOnly(_))));
        assert!(matches!(parse_relations("a (>= 1) <cross>"), Err(SourceOnly(_))));
    }

    #[test]
    fn provides_are_names_with_exact_versions() {
        let p = parse_provides("mail-transport-agent, libfoo-abi-2 (= 2.1)").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].version, Some((Op::Exactly, v("2.1"))));
        assert!(matches!(parse_provides("x (>= 1)"), Err(RelationError::ProvidesOp(_))));
        assert!(matches!(parse_provides("x | y"), Err(RelationError::ProvidesAlternative(_))));
        assert!(parse_provides("").unwrap().is_empty());
    }

    #[test]
    fn names_follow_dpkg() {
        assert!(valid_package_name("g++") && valid_package_name("libstdc++6") && valid_package_name("0ad"));
        assert!(valid_package_name("python3.11-minimal"));
        assert!(!valid_package_name("") && !valid_package_name(".a") && !valid_package_name("a_b"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_text_parses_or_errs(text in "[a-z0-9:|,() <>=!\\[\\].~+-]{0,40}") {
                let _ = parse_relations(&text);
                let _ = parse_provides(&text);
            }

            #[test]
            fn written_relations_read_back(name in "[a-z0-9][a-z0-9+.-]{0,10}", arch in proptest::option::of("(any|native|arm64)"), ver in proptest::option::of("[0-9][0-9a-z.+~]{0,6}")) {
                let rel = Relation { name, arch, version: ver.map(|v| (Op::LaterOrEqual, v.parse().unwrap())) };
                let back = parse_relations(&rel.to_string()).unwrap();
                prop_assert_eq!(back, vec![vec![rel]]);
            }
        }
    }
}
