//! Bramble's Debian version ordering against dpkg itself: `dpkg --compare-versions` on
//! thousands of generated pairs, chosen to hit the awkward parts (`~`, epochs, revisions,
//! leading zeros, letters against symbols, empty numeric parts), must agree with
//! `Version::cmp`, and dpkg must refuse exactly the strings Bramble refuses.

use bramble::source::debian::Version;
use std::cmp::Ordering;
use std::process::Command;

/// A small deterministic generator (xorshift), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn version(rng: &mut Rng) -> String {
    let mut s = String::new();
    if rng.next() % 4 == 0 {
        s += rng.pick(&["0:", "1:", "2:", "00:", "10:", "a:", ":"]);
    }
    for _ in 0..1 + rng.next() % 5 {
        s += rng
            .pick(&["0", "1", "9", "10", "01", "007", "a", "b", "Z", ".", "+", "~", "~~", "-", ":", "rc", "1.0", "2~"]);
    }
    if rng.next() % 3 == 0 {
        s += rng.pick(&["-1", "-0", "-01", "-1~", "-1+b1", "-a", "-", "-1.2"]);
    }
    s
}

/// dpkg's verdict on `a op b`: Some(true/false), or None when it refuses a version.
fn dpkg(a: &str, op: &str, b: &str) -> Option<bool> {
    let status = Command::new("dpkg")
        .args(["--compare-versions", "--", a, op, b])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("dpkg is part of every Debian system");
    match status.code() {
        Some(0) => Some(true),
        Some(1) => Some(false),
        _ => None,
    }
}

#[test]
fn ordering_and_refusals_match_dpkg() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut compared = 0;
    let mut refused = 0;
    for _ in 0..1200 {
        let (a, b) = (version(&mut rng), version(&mut rng));
        let ours = (a.parse::<Version>(), b.parse::<Version>());
        let lt = dpkg(&a, "lt", &b);
        match ours {
            (Ok(va), Ok(vb)) => {
                let eq = dpkg(&a, "eq", &b);
                let theirs = match (lt, eq) {
                    (Some(true), _) => Ordering::Less,
                    (Some(false), Some(true)) => Ordering::Equal,
                    (Some(false), Some(false)) => Ordering::Greater,
                    _ => panic!("dpkg refused `{a}` or `{b}`, which Bramble accepts"),
                };
                assert_eq!(va.cmp(&vb), theirs, "`{a}` vs `{b}`");
                compared += 1;
            }
            _ => {
                assert_eq!(lt, None, "Bramble refuses `{a}` or `{b}` ({:?}), dpkg does not", ours);
                refused += 1;
            }
        }
    }
    // The generator must exercise both sides.
    assert!(compared > 500 && refused > 50, "compared {compared}, refused {refused}");
}
