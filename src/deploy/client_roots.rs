//! Which clients' own roots a redeploy keeps. A per-client root is writable: what the client
//! wrote there (its files, the SSH host keys its first boot made) is its state, so a redeploy
//! carries the deployed root over and only clients new to the lab get the build's root. A
//! reset, asked for by name or for all, gives a client the build's root again. Pure: names in,
//! a decision out.

use anyhow::{Result, bail};
use std::collections::BTreeSet;

/// What the user asked to be reset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Reset {
    /// Nothing: every deployed root the new lab still has is kept.
    #[default]
    None,
    /// Every client gets the build's root.
    All,
    /// These clients get the build's root.
    Clients(Vec<String>),
}

/// The decision, by client name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Deployed roots carried into the new lab unchanged.
    pub keep: Vec<String>,
    /// Deployed roots replaced by the build's, as asked.
    pub reset: Vec<String>,
}

/// Decide from the clients with a root in the new lab (`built`) and in the deployed one
/// (`deployed`). A deployed root the new lab no longer has would be lost, so it must be named
/// for a reset; so must every name given, since a misspelt one would keep what the user meant
/// to reset.
pub fn decide(built: &BTreeSet<String>, deployed: &BTreeSet<String>, reset: &Reset) -> Result<Decision> {
    let asked: BTreeSet<&String> = match reset {
        Reset::None => BTreeSet::new(),
        Reset::All => deployed.iter().collect(),
        Reset::Clients(names) => names.iter().collect(),
    };
    let unknown: Vec<&str> = asked.iter().filter(|n| !deployed.contains(**n)).map(|n| n.as_str()).collect();
    if !unknown.is_empty() {
        let have = if deployed.is_empty() {
            "none has one yet".to_string()
        } else {
            format!("those with one: {}", deployed.iter().cloned().collect::<Vec<_>>().join(", "))
        };
        bail!("--reset-client {}: no deployed client root by that name ({have})", unknown.join(", "));
    }
    let orphaned: Vec<&str> =
        deployed.iter().filter(|n| !built.contains(*n) && !asked.contains(n)).map(|n| n.as_str()).collect();
    if !orphaned.is_empty() {
        bail!(
            "the new lab has no client {}, whose deployed root holds its state; deploying would delete it: \
             copy out what you need, then give --reset-client {} (or --reset)",
            orphaned.join(", "),
            orphaned.join(" --reset-client ")
        );
    }
    Ok(Decision {
        keep: deployed.iter().filter(|n| !asked.contains(n)).cloned().collect(),
        reset: deployed.iter().filter(|n| asked.contains(n)).cloned().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn deployed_roots_are_kept_unless_reset() {
        let built = set(&["a", "b", "c"]);
        let deployed = set(&["a", "b"]);
        let d = decide(&built, &deployed, &Reset::None).unwrap();
        assert_eq!(d, Decision { keep: vec!["a".into(), "b".into()], reset: vec![] });
        let d = decide(&built, &deployed, &Reset::Clients(vec!["b".into()])).unwrap();
        assert_eq!(d, Decision { keep: vec!["a".into()], reset: vec!["b".into()] });
        let d = decide(&built, &deployed, &Reset::All).unwrap();
        assert_eq!(d, Decision { keep: vec![], reset: vec!["a".into(), "b".into()] });
        assert_eq!(decide(&built, &set(&[]), &Reset::All).unwrap(), Decision::default());
    }

    #[test]
    fn a_root_the_new_lab_drops_is_never_deleted_unasked() {
        let e = decide(&set(&["a"]), &set(&["a", "gone"]), &Reset::None).unwrap_err().to_string();
        assert!(e.contains("no client gone") && e.contains("--reset-client gone"), "{e}");
        let d = decide(&set(&["a"]), &set(&["a", "gone"]), &Reset::Clients(vec!["gone".into()])).unwrap();
        assert_eq!(d, Decision { keep: vec!["a".into()], reset: vec!["gone".into()] });
    }

    #[test]
    fn a_misspelt_reset_is_refused() {
        let e = decide(&set(&["a"]), &set(&["a"]), &Reset::Clients(vec!["A".into()])).unwrap_err().to_string();
        assert_eq!(e, "--reset-client A: no deployed client root by that name (those with one: a)");
    }
}
