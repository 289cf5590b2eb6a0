//! The packages to add to a system so that some packages can be installed offline: the
//! dependency closure of root package names over an archive's index, minus what the system's
//! dpkg status already satisfies. `Pre-Depends` count as `Depends`; `a | b` takes an installed
//! or already chosen alternative, else the first the archive can satisfy; versions are checked
//! with dpkg's ordering; virtual packages are satisfied through `Provides`; architectures follow
//! dpkg's multi-arch rules (`archsatisfied` in lib/dpkg/depcon.c). An installed package too old
//! for a relation is upgraded from the archive.
//!
//! Like apt's first choice and unlike a SAT solver, it never backtracks: a choice that leads to
//! an unsatisfiable relation is an error naming the package, the relation and why each
//! alternative fails. Conflicts and Breaks are not considered: the server image installs a few
//! packages onto a known release, where the archive's own consistency holds.

use super::packages::{BinaryPackage, Index, IndexEntry, MultiArch};
use super::relation::{self, Op, Relation};
use super::status::StatusEntry;
use std::collections::BTreeMap;

/// One package to add, with why it is needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Added<'a> {
    pub entry: &'a IndexEntry,
    /// The package whose dependency chose this one and that dependency as written; `None` for
    /// a root.
    pub needed_by: Option<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClosureError {
    #[error("`{0}` is neither in the archive nor installed, and nothing provides it")]
    UnknownRoot(String),
    #[error("`{name}` is a virtual package provided by {}; name one of them", providers.join(", "))]
    AmbiguousRoot { name: String, providers: Vec<String> },
    #[error(
        "{package} {version} ({}) depends on `{relation}`, which nothing satisfies: {}",
        chain_text(chain),
        reasons.join("; ")
    )]
    Unmet {
        package: String,
        version: String,
        /// From the root to `package`.
        chain: Vec<String>,
        relation: String,
        /// Why each alternative fails, in order.
        reasons: Vec<String>,
    },
}

fn chain_text(chain: &[String]) -> String {
    match chain {
        [] | [_] => "asked for".into(),
        [.., _] => {
            format!("needed by {}", chain[..chain.len() - 1].iter().rev().cloned().collect::<Vec<_>>().join(" ← "))
        }
    }
}

/// dpkg's `archsatisfied`: whether a package of `pkg` architecture and Multi-Arch satisfies
/// `rel`, written in a package of `dep_arch`, on a system whose native architecture is `native`.
pub fn arch_satisfies(pkg: &BinaryPackage, rel: &Relation, dep_arch: &str, native: &str) -> bool {
    if rel.arch.is_none() && pkg.multi_arch == MultiArch::Foreign {
        return true;
    }
    if rel.arch.as_deref() == Some("any") {
        return pkg.multi_arch == MultiArch::Allowed;
    }
    let concrete = |a: &str| if a == "all" { native.to_string() } else { a.to_string() };
    let wanted = match rel.arch.as_deref() {
        None => concrete(dep_arch),
        Some("native") => native.to_string(),
        Some(a) => concrete(a),
    };
    wanted == concrete(&pkg.architecture)
}

/// Whether `pkg`, as itself or through one of its Provides, satisfies `rel`.
fn satisfies(pkg: &BinaryPackage, rel: &Relation, dep_arch: &str, native: &str) -> bool {
    if !arch_satisfies(pkg, rel, dep_arch, native) {
        return false;
    }
    if pkg.name == rel.name {
        return rel.version_allows(&pkg.version);
    }
    pkg.provides.iter().any(|p| p.name == rel.name && provision_allows(p, rel))
}

/// An unversioned Provides satisfies only unversioned relations (Policy §7.5).
fn provision_allows(provision: &Relation, rel: &Relation) -> bool {
    match (&rel.version, &provision.version) {
        (None, _) => true,
        (Some((op, want)), Some((Op::Exactly, have))) => op.holds(have, want),
        (Some(_), _) => false,
    }
}

/// Lower sorts first: the providers of a virtual package are tried by priority, then name.
fn priority_rank(p: &BinaryPackage) -> u8 {
    match p.priority.as_deref() {
        Some("required") => 0,
        Some("important") => 1,
        Some("standard") => 2,
        Some("optional") => 3,
        Some("extra") => 4,
        _ => 5,
    }
}

struct Solver<'a> {
    index: &'a Index,
    installed: Vec<&'a BinaryPackage>,
    native: &'a str,
    selected: BTreeMap<&'a str, &'a IndexEntry>,
}

impl<'a> Solver<'a> {
    fn already_satisfied(&self, rel: &Relation, dep_arch: &str) -> bool {
        self.installed.iter().any(|p| satisfies(p, rel, dep_arch, self.native))
            || self.selected.values().any(|e| satisfies(&e.package, rel, dep_arch, self.native))
    }

    /// The archive's best package for `rel`: the real package at its highest satisfying
    /// version, else a provider. A name already chosen at another version cannot be chosen
    /// again.
    fn candidate(&self, rel: &Relation, dep_arch: &str) -> Option<&'a IndexEntry> {
        let free = |e: &&IndexEntry| self.selected.get(e.package.name.as_str()).is_none_or(|s| std::ptr::eq(*s, *e));
        let real = self
            .index
            .named(&rel.name)
            .filter(free)
            .filter(|e| satisfies(&e.package, rel, dep_arch, self.native))
            .max_by(|a, b| {
                a.package.version.cmp(&b.package.version).then_with(|| {
                    // Same version: the native build over `all`, then the first listed.
                    (a.package.architecture == self.native).cmp(&(b.package.architecture == self.native))
                })
            });
        real.or_else(|| {
            self.index
                .providing(&rel.name)
                .map(|(e, _)| e)
                .filter(free)
                .filter(|e| satisfies(&e.package, rel, dep_arch, self.native))
                .min_by(|a, b| {
                    (priority_rank(&a.package), &a.package.name)
                        .cmp(&(priority_rank(&b.package), &b.package.name))
                        .then_with(|| b.package.version.cmp(&a.package.version))
                })
        })
    }

    /// Why nothing satisfies `rel`, in words.
    fn why_not(&self, rel: &Relation, dep_arch: &str) -> String {
        let name = &rel.name;
        if let Some(chosen) = self.selected.get(name.as_str()) {
            return format!("`{rel}`: `{name}` is already chosen at {}", chosen.package.version);
        }
        let constraint = rel.version.as_ref().map(|(op, v)| format!("{} {v}", op.as_str()));
        let versions = |list: Vec<&BinaryPackage>| {
            list.iter().map(|p| format!("{} ({})", p.version, p.architecture)).collect::<Vec<_>>().join(", ")
        };
        let archive: Vec<&BinaryPackage> = self.index.named(name).map(|e| &e.package).collect();
        let fitting: Vec<&BinaryPackage> =
            archive.iter().copied().filter(|p| arch_satisfies(p, rel, dep_arch, self.native)).collect();
        let installed: Vec<&BinaryPackage> = self.installed.iter().copied().filter(|p| &p.name == name).collect();
        let mut parts = Vec::new();
        match (&constraint, fitting.is_empty()) {
            (_, true) if archive.is_empty() => parts.push("the archive does not have it".to_string()),
            (_, true) => parts.push(format!("the archive has it only for other architectures: {}", versions(archive))),
            (Some(c), false) => parts.push(format!("the archive has {}, not {c}", versions(fitting))),
            (None, false) => parts.push(format!("the archive has {}", versions(fitting))),
        }
        if !installed.is_empty() {
            parts.push(format!("the system has {}", versions(installed)));
        }
        let providers: Vec<String> =
            self.index.providing(name).map(|(e, p)| p.to_string() + " by " + &e.package.name).collect();
        if !providers.is_empty() {
            parts.push(format!("provided as {}", providers.join(", ")));
        }
        format!("`{rel}`: {}", parts.join(", "))
    }
}

struct Frame<'a> {
    entry: &'a IndexEntry,
    /// The next of its dependencies to look at.
    next: usize,
}

/// The packages from `index` to install, with their dependencies, so that every one of `roots`
/// is installed on a system whose dpkg status is `status`, for native architecture `arch`.
/// Dependencies come before the packages that need them; the order is the same on every run.
pub fn closure<'a>(
    index: &'a Index,
    roots: &[&str],
    status: &'a [StatusEntry],
    arch: &'a str,
) -> Result<Vec<Added<'a>>, ClosureError> {
    let installed = status.iter().filter(|s| s.is_installed()).map(|s| &s.package).collect();
    let mut solver = Solver { index, installed, native: arch, selected: BTreeMap::new() };
    let mut out: Vec<Added<'a>> = Vec::new();
    let mut reasons: BTreeMap<&str, (String, String)> = BTreeMap::new();
    for &root in roots {
        let rel = Relation { name: root.to_string(), arch: None, version: None };
        if solver.already_satisfied(&rel, arch) {
            continue;
        }
        let providers: Vec<&IndexEntry> = index.providing(root).map(|(e, _)| e).collect();
        let entry = match index.pick(root, arch) {
            Some(e) => e,
            None => match providers.as_slice() {
                [] => return Err(ClosureError::UnknownRoot(root.into())),
                [one] => one,
                many => {
                    let mut names: Vec<String> = many.iter().map(|e| e.package.name.clone()).collect();
                    names.sort();
                    names.dedup();
                    return Err(ClosureError::AmbiguousRoot { name: root.into(), providers: names });
                }
            },
        };
        solver.selected.insert(&entry.package.name, entry);
        let mut stack = vec![Frame { entry, next: 0 }];
        // Each step either finishes a frame or adds a package; the index bounds both.
        while let Some(frame) = stack.last_mut() {
            let package = &frame.entry.package;
            let Some(group) = package.all_depends().nth(frame.next) else {
                let done = stack.pop().map(|f| f.entry);
                if let Some(entry) = done {
                    let needed_by = reasons.remove(entry.package.name.as_str());
                    out.push(Added { entry, needed_by });
                }
                continue;
            };
            frame.next += 1;
            let dep_arch = package.architecture.as_str();
            if group.iter().any(|rel| solver.already_satisfied(rel, dep_arch)) {
                continue;
            }
            match group.iter().find_map(|rel| solver.candidate(rel, dep_arch)) {
                Some(chosen) => {
                    let why = (package.name.clone(), relation::alternatives_text(group));
                    reasons.insert(&chosen.package.name, why);
                    solver.selected.insert(&chosen.package.name, chosen);
                    stack.push(Frame { entry: chosen, next: 0 });
                }
                None => {
                    return Err(ClosureError::Unmet {
                        package: package.name.clone(),
                        version: package.version.to_string(),
                        chain: stack.iter().map(|f| f.entry.package.name.clone()).collect(),
                        relation: relation::alternatives_text(group),
                        reasons: group.iter().map(|rel| solver.why_not(rel, dep_arch)).collect(),
                    });
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::packages::tests::stanza;
    use super::super::status;
    use super::*;

    fn index(stanzas: &[String]) -> Index {
        Index::parse(stanzas.concat().as_bytes()).unwrap()
    }

    fn names(added: &[Added]) -> Vec<String> {
        added.iter().map(|a| format!("{}={}", a.entry.package.name, a.entry.package.version)).collect()
    }

    fn st(entries: &str) -> Vec<StatusEntry> {
        status::parse(entries.as_bytes()).unwrap()
    }

    fn installed(name: &str, version: &str, arch: &str, extra: &str) -> String {
        format!("Package: {name}\nStatus: install ok installed\nVersion: {version}\nArchitecture: {arch}\n{extra}\n")
    }

    #[test]
    fn dependencies_come_first_and_installed_ones_are_skipped() {
        let idx = index(&[
            stanza("server", "2", "arm64", "Pre-Depends: helper\nDepends: common (= 2), libc6 (>= 2.34)\n"),
            stanza("common", "2", "arm64", "Depends: libc6 (>= 2.30), tools\n"),
            stanza("common", "1", "arm64", ""),
            stanza("tools", "1", "all", "Depends: server\n"),
            stanza("helper", "1", "all", ""),
            stanza("libc6", "2.36", "arm64", ""),
        ]);
        let system = st(&installed("libc6", "2.36", "arm64", "Multi-Arch: same\n"));
        let added = closure(&idx, &["server"], &system, "arm64").unwrap();
        assert_eq!(names(&added), ["helper=1", "tools=1", "common=2", "server=2"]);
        assert_eq!(added[0].needed_by, Some(("server".into(), "helper".into())));
        assert_eq!(added[2].needed_by, Some(("server".into(), "common (= 2)".into())));
        assert_eq!(added[3].needed_by, None);
        // An old libc6 is upgraded from the archive.
        let old = st(&installed("libc6", "2.31", "arm64", ""));
        let added = closure(&idx, &["server"], &old, "arm64").unwrap();
        assert_eq!(names(&added), ["helper=1", "tools=1", "common=2", "libc6=2.36", "server=2"]);
        // An installed root is not added again, nor are roots named twice.
        assert!(closure(&idx, &["libc6"], &system, "arm64").unwrap().is_empty());
        assert_eq!(closure(&idx, &["helper", "helper"], &system, "arm64").unwrap().len(), 1);
    }

    #[test]
    fn alternatives_prefer_installed_then_chosen_then_first_available() {
        let idx = index(&[
            stanza("app", "1", "all", "Depends: mta-a | mta-b, x | y, y | x\n"),
            stanza("mta-a", "1", "all", ""),
            stanza("mta-b", "1", "all", ""),
            stanza("y", "1", "all", ""),
        ]);
        assert_eq!(names(&closure(&idx, &["app"], &[], "arm64").unwrap()), ["mta-a=1", "y=1", "app=1"]);
        let system = st(&installed("mta-b", "0.5", "all", ""));
        assert_eq!(names(&closure(&idx, &["app"], &system, "arm64").unwrap()), ["y=1", "app=1"]);
    }

    #[test]
    fn virtual_packages_through_provides() {
        let idx = index(&[
            stanza("app", "1", "arm64", "Depends: mail-transport-agent, abi (>= 2), plain (>= 1) | plain-real\n"),
            stanza("postfix", "3", "arm64", "Priority: optional\nProvides: mail-transport-agent\n"),
            stanza("exim4", "4", "arm64", "Priority: standard\nProvides: mail-transport-agent\n"),
            stanza("libabi", "7", "arm64", "Provides: abi (= 2.1)\n"),
            stanza("unversioned", "1", "arm64", "Provides: plain\n"),
            stanza("plain-real", "1", "arm64", ""),
        ]);
        // The standard-priority provider wins; the unversioned Provides does not meet (>= 1).
        let added = closure(&idx, &["app"], &[], "arm64").unwrap();
        assert_eq!(names(&added), ["exim4=4", "libabi=7", "plain-real=1", "app=1"]);
        // An installed provider satisfies the virtual package.
        let system = st(&installed("sendmail", "8", "arm64", "Provides: mail-transport-agent\n"));
        assert_eq!(names(&closure(&idx, &["app"], &system, "arm64").unwrap()), ["libabi=7", "plain-real=1", "app=1"]);
        // Roots: a single provider is taken, several are an error.
        assert_eq!(names(&closure(&idx, &["abi"], &[], "arm64").unwrap()), ["libabi=7"]);
        assert_eq!(
            closure(&idx, &["mail-transport-agent"], &[], "arm64").unwrap_err().to_string(),
            "`mail-transport-agent` is a virtual package provided by exim4, postfix; name one of them"
        );
        assert_eq!(closure(&idx, &["nothing"], &[], "arm64").unwrap_err(), ClosureError::UnknownRoot("nothing".into()));
    }

    #[test]
    fn multi_arch_rules_follow_dpkg() {
        let pkg = |arch: &str, ma: MultiArch| BinaryPackage {
            name: "p".into(),
            version: "1".parse().unwrap(),
            architecture: arch.into(),
            multi_arch: ma,
            depends: vec![],
            pre_depends: vec![],
            provides: vec![],
            essential: false,
            priority: None,
            source: None,
        };
        let rel = |q: Option<&str>| Relation { name: "p".into(), arch: q.map(str::to_string), version: None };
        use MultiArch::*;
        // Implicit: same architecture (all counts as native), or Multi-Arch: foreign.
        assert!(arch_satisfies(&pkg("arm64", No), &rel(None), "arm64", "arm64"));
        assert!(arch_satisfies(&pkg("all", No), &rel(None), "arm64", "arm64"));
        assert!(arch_satisfies(&pkg("arm64", No), &rel(None), "all", "arm64"));
        assert!(!arch_satisfies(&pkg("armhf", No), &rel(None), "arm64", "arm64"));
        assert!(!arch_satisfies(&pkg("armhf", Same), &rel(None), "arm64", "arm64"));
        assert!(arch_satisfies(&pkg("armhf", Foreign), &rel(None), "arm64", "arm64"));
        assert!(!arch_satisfies(&pkg("armhf", Allowed), &rel(None), "arm64", "arm64"));
        // :any needs Multi-Arch: allowed, whatever the architecture.
        assert!(arch_satisfies(&pkg("armhf", Allowed), &rel(Some("any")), "arm64", "arm64"));
        assert!(!arch_satisfies(&pkg("arm64", No), &rel(Some("any")), "arm64", "arm64"));
        assert!(!arch_satisfies(&pkg("arm64", Foreign), &rel(Some("any")), "arm64", "arm64"));
        // Explicit architectures.
        assert!(arch_satisfies(&pkg("arm64", No), &rel(Some("native")), "armhf", "arm64"));
        assert!(arch_satisfies(&pkg("armhf", Same), &rel(Some("armhf")), "arm64", "arm64"));
        assert!(!arch_satisfies(&pkg("armhf", Foreign), &rel(Some("arm64")), "arm64", "arm64"));

        let idx = index(&[
            stanza("tool", "1", "arm64", "Depends: perl:any, python3, libfoo\n"),
            stanza("perl", "5", "arm64", "Multi-Arch: allowed\n"),
            stanza("python3", "3", "arm64", "Multi-Arch: allowed\n"),
            stanza("libfoo", "1", "arm64", "Multi-Arch: same\n"),
        ]);
        // A foreign perl satisfies perl:any only because it is allowed; python3 and libfoo
        // must be native.
        let system = st(&[
            installed("perl", "5", "armhf", "Multi-Arch: allowed\n"),
            installed("python3", "3", "armhf", "Multi-Arch: allowed\n"),
            installed("libfoo", "1", "armhf", "Multi-Arch: same\n"),
        ]
        .concat());
        assert_eq!(names(&closure(&idx, &["tool"], &system, "arm64").unwrap()), ["python3=3", "libfoo=1", "tool=1"]);
    }

    #[test]
    fn unmet_relations_say_why_for_each_alternative() {
        let idx = index(&[
            stanza("top", "1", "arm64", "Depends: mid\n"),
            stanza("mid", "1:2-1", "arm64", "Depends: low (>= 3) | other:armhf | missing, x\n"),
            stanza("low", "2", "arm64", ""),
            stanza("low", "4", "amd64", ""),
            stanza("other", "1", "amd64", ""),
            stanza("x", "1", "all", ""),
        ]);
        let system = st(&installed("low", "1", "arm64", ""));
        let err = closure(&idx, &["top"], &system, "arm64").unwrap_err();
        assert_eq!(
            err.to_string(),
            "mid 1:2-1 (needed by top) depends on `low (>= 3) | other:armhf | missing`, which nothing satisfies: \
             `low (>= 3)`: the archive has 2 (arm64), not >= 3, the system has 1 (arm64); \
             `other:armhf`: the archive has it only for other architectures: 1 (amd64); \
             `missing`: the archive does not have it"
        );
        let idx2 = index(&[stanza("a", "1", "arm64", "Depends: b (= 2)\n"), stanza("b", "1", "arm64", "")]);
        let err = closure(&idx2, &["a"], &[], "arm64").unwrap_err();
        assert!(err.to_string().starts_with("a 1 (asked for) depends on `b (= 2)`"), "{err}");
        let idx3 = index(&[stanza("a", "1", "arm64", "Depends: b\n"), stanza("b", "1", "armhf", "")]);
        let err = closure(&idx3, &["a"], &[], "arm64").unwrap_err();
        assert!(err.to_string().contains("only for other architectures: 1 (armhf)"), "{err}");
    }

    #[test]
    fn two_relations_on_one_name_must_agree() {
        let idx = index(&[
            stanza("a", "1", "all", "Depends: lib (>= 2), b\n"),
            stanza("b", "1", "all", "Depends: lib (<< 2)\n"),
            stanza("lib", "2", "all", ""),
            stanza("lib", "1", "all", ""),
        ]);
        let err = closure(&idx, &["a"], &[], "arm64").unwrap_err().to_string();
        assert!(err.contains("`lib (<< 2)`: `lib` is already chosen at 2"), "{err}");
    }
}
