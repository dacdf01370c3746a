use std::fs;

use super::{accounts::Accounts, *};

/// Accounts the hermetic tests resolve against.
const PASSWD_FIXTURE: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment line
alice:x:1001:1001::/home/alice:/bin/sh
bob:x:1002:1002::/home/bob:/bin/sh
carol:x:1003:2000::/home/carol:/bin/sh
dave:x:1004:1004::/home/dave:/bin/sh
+nis-user::::::
";

const GROUP_FIXTURE: &str = "\
root:x:0:
alice:x:1001:
netlab:x:2000:bob
wheel:x:10:alice, dave
ghosts:x:3000:nobody_here
";

fn accounts() -> Accounts {
    Accounts::parse(PASSWD_FIXTURE, GROUP_FIXTURE)
}

fn parse(text: &str) -> Policy {
    Policy::parse_with(text, "policy.toml", &accounts())
        .unwrap_or_else(|error| panic!("policy should parse, got: {error}\n{text}"))
}

fn peer(uid: u32, gid: u32) -> Peer {
    Peer {
        uid,
        gid,
        pid: 4242,
    }
}

fn rules_for(policy: &Policy, uid: u32, gid: u32) -> Option<&Rules> {
    policy.rules_for(&peer(uid, gid))
}

fn principal_of(policy: &Policy, uid: u32, gid: u32) -> Option<&str> {
    rules_for(policy, uid, gid).map(|rules| rules.principal.as_str())
}

/// The error `text` must give; panics if it parses.
fn error(text: &str) -> PolicyError {
    match Policy::parse_with(text, "policy.toml", &accounts()) {
        Ok(_) => panic!("policy should be refused:\n{text}"),
        Err(error) => error,
    }
}

/// Asserts `text` is refused as invalid at `line`, with a message
/// containing `needle`, for principal `principal`.
fn assert_invalid(text: &str, line: usize, principal: &str, needle: &str) {
    match error(text) {
        PolicyError::Invalid {
            origin,
            line: got_line,
            principal: got_principal,
            message,
        } => {
            assert_eq!(origin, "policy.toml", "origin for:\n{text}");
            assert_eq!(
                got_line, line,
                "line of {message:?} (principal {got_principal:?}) in:\n{text}"
            );
            assert_eq!(got_principal, principal, "principal for:\n{text}");
            assert!(
                message.contains(needle),
                "message {message:?} should contain {needle:?}"
            );
        }
        other => panic!("expected an Invalid error at line {line}, got {other:?}"),
    }
}

/// Asserts `text` is refused as a syntax/shape error at `line`, with a
/// message containing `needle`.
fn assert_syntax(text: &str, line: usize, needle: &str) {
    match error(text) {
        PolicyError::Syntax {
            origin,
            line: got_line,
            column,
            message,
        } => {
            assert_eq!(origin, "policy.toml", "origin for:\n{text}");
            assert_eq!(got_line, line, "line of {message:?} in:\n{text}");
            assert!(column >= 1, "columns are 1-based, got {column}");
            assert!(
                message.contains(needle),
                "message {message:?} should contain {needle:?}"
            );
        }
        other => panic!("expected a Syntax error at line {line}, got {other:?}"),
    }
}

/// The example in the module documentation, which must stay valid.
fn documented_example() -> String {
    let source = include_str!("mod.rs");
    let mut example = String::new();
    let mut inside = false;
    for line in source.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            continue;
        };
        let doc = doc.strip_prefix(' ').unwrap_or(doc);
        match (inside, doc) {
            (false, "```toml") => inside = true,
            (true, "```") => return example,
            (true, _) => {
                example.push_str(doc);
                example.push('\n');
            }
            _ => {}
        }
    }
    panic!("the module documentation should contain a ```toml example");
}

#[test]
fn default_policy_allows_root_everything_and_others_nothing() {
    let policy = Policy::default_policy();
    let root = rules_for(&policy, 0, 0).expect("root should be allowed by default");
    assert_eq!(
        *root,
        Rules {
            principal: "root".to_owned(),
            netns: vec!["*".to_owned()],
            interfaces: vec!["*".to_owned()],
            directions: Directions::BOTH,
            filter: None,
            max_snaplen: 262_144,
            snap_headers: false,
            anonymize: None,
            packet_quota: 0,
            byte_quota: 0,
            max_sessions: 1024,
            max_filter_insns: 0,
            ring_bytes: 4 << 20,
            inject: Some(InjectRules {
                filter: String::new(),
                rate_pps: 100_000,
                rate_bps: 1_000_000_000,
                spoof: true,
            }),
            record_directory: Some(std::path::PathBuf::from("/var/lib/pktd")),
            disk_allowance: 0,
        },
        "root's default rules"
    );
    assert!(root.allows_netns("lab1"), "root may use any namespace");
    assert!(root.allows_netns("-"), "root may use pktd's namespace");
    assert!(root.allows_interface("eth0"), "root may use any interface");
    assert!(
        root.allows_direction(true, true),
        "root may capture both ways"
    );
    assert!(
        rules_for(&policy, 1000, 1000).is_none(),
        "uid 1000 should be denied by default"
    );
    assert!(
        rules_for(&policy, 1000, 0).is_none(),
        "gid 0 alone should not make a client root"
    );
}

#[test]
fn documented_example_parses_with_every_field() {
    // The example's key file, for real.
    let key = KeyFile::new("documented", &[9; 32], 0o600);
    let example = documented_example().replace(
        "/etc/pktd/students.key",
        key.0.to_str().expect("a UTF-8 temporary path"),
    );
    let policy = parse(&example);
    let student = rules_for(&policy, 3000, 3000).expect("uid 3000 should match students");
    let anonymize = student.anonymize.clone().expect("the example anonymizes");
    assert_eq!(
        (
            anonymize.mac,
            anonymize.payload,
            anonymize.key_file.as_path()
        ),
        (
            pktd_anon::MacMode::Hash,
            pktd_anon::PayloadMode::Zero,
            key.0.as_path()
        )
    );
    let alice = rules_for(&policy, 1001, 1001).expect("alice should match researchers");
    assert_eq!(
        *alice,
        Rules {
            principal: "researchers".to_owned(),
            netns: vec!["lab1".to_owned(), "lab2".to_owned()],
            interfaces: vec!["veth*".to_owned(), "eth0".to_owned()],
            directions: Directions::BOTH,
            filter: Some("not port 22".to_owned()),
            max_snaplen: 1500,
            snap_headers: true,
            anonymize: None,
            packet_quota: 1_000_000,
            byte_quota: 100_000_000,
            max_sessions: 4,
            max_filter_insns: 512,
            ring_bytes: 4_194_304,
            inject: Some(InjectRules {
                filter: "icmp[icmptype] = icmp-echo and dst net 10.0.0.0/8".to_owned(),
                rate_pps: 100,
                rate_bps: 1_000_000,
                spoof: false,
            }),
            record_directory: Some(std::path::PathBuf::from("/var/lib/pktd/researchers")),
            disk_allowance: 1_000_000_000,
        },
        "researchers' rules"
    );
    assert_eq!(principal_of(&policy, 0, 0), Some("admins"), "root");
    assert_eq!(
        principal_of(&policy, 1004, 1004),
        None,
        "dave matches nobody"
    );
}

#[test]
fn absent_keys_take_their_defaults() {
    let policy = parse("[[principal]]\nname = \"minimal\"\nusers = [1001]\n");
    let rules = rules_for(&policy, 1001, 1001).expect("uid 1001 should match");
    assert_eq!(
        *rules,
        Rules {
            principal: "minimal".to_owned(),
            netns: vec![],
            interfaces: vec![],
            directions: Directions::BOTH,
            filter: None,
            max_snaplen: 262_144,
            snap_headers: false,
            anonymize: None,
            packet_quota: 0,
            byte_quota: 0,
            max_sessions: 16,
            max_filter_insns: DEFAULT_MAX_FILTER_INSNS,
            ring_bytes: 4 << 20,
            inject: None,
            record_directory: None,
            disk_allowance: DEFAULT_DISK_ALLOWANCE,
        },
        "defaults"
    );
    assert!(!rules.allows_netns(""), "no namespace by default");
    assert!(!rules.allows_interface("eth0"), "no interface by default");
}

#[test]
fn empty_file_denies_everyone() {
    let policy = parse("# nothing here\n");
    assert!(rules_for(&policy, 0, 0).is_none(), "even root is denied");
}

#[test]
fn first_matching_principal_wins() {
    let policy = parse(
        r#"
[[principal]]
name = "alice-only"
users = ["alice"]
max_sessions = 1

[[principal]]
name = "wheel"
groups = ["wheel"]
max_sessions = 2

[[principal]]
name = "everyone-listed"
users = ["alice", "bob", 1004, 77777]
max_sessions = 3
"#,
    );
    assert_eq!(principal_of(&policy, 1001, 1001), Some("alice-only"));
    // dave is in wheel and also listed later: the earlier principal wins.
    assert_eq!(principal_of(&policy, 1004, 1004), Some("wheel"));
    assert_eq!(principal_of(&policy, 1002, 1002), Some("everyone-listed"));
    assert_eq!(
        principal_of(&policy, 77777, 77777),
        Some("everyone-listed"),
        "a numeric uid need not exist"
    );
    assert_eq!(principal_of(&policy, 1003, 2000), None, "carol is nowhere");
}

#[test]
fn groups_match_gid_listed_members_and_primary_members() {
    let policy = parse(
        r#"
[[principal]]
name = "netlab"
groups = ["netlab"]

[[principal]]
name = "by-number"
groups = [10, 3000, 55555]
"#,
    );
    // bob is listed in /etc/group's netlab entry: he matches whatever gid
    // his process runs with.
    assert_eq!(principal_of(&policy, 1002, 1002), Some("netlab"), "bob");
    // carol's primary group in /etc/passwd is netlab.
    assert_eq!(principal_of(&policy, 1003, 1003), Some("netlab"), "carol");
    // A stranger running with gid 2000 matches by gid.
    assert_eq!(
        principal_of(&policy, 9999, 2000),
        Some("netlab"),
        "gid 2000"
    );
    // Group 10 (wheel) lists "alice, dave": both members.
    assert_eq!(
        principal_of(&policy, 1001, 1001),
        Some("by-number"),
        "alice"
    );
    assert_eq!(principal_of(&policy, 1004, 1004), Some("by-number"), "dave");
    // A gid missing from /etc/group still matches by gid.
    assert_eq!(principal_of(&policy, 9999, 55555), Some("by-number"));
    // ghosts' member does not exist: it matches no one by uid.
    assert_eq!(principal_of(&policy, 9999, 9999), None, "stranger");
}

#[test]
fn system_accounts_resolve() {
    // Names present on every Debian system; no accounts are created.
    let policy = Policy::parse(
        r#"
[[principal]]
name = "system"
users = ["root", "daemon", 4000000000]
groups = ["nogroup"]
"#,
        "system.toml",
    )
    .unwrap_or_else(|error| panic!("root, daemon and nogroup should resolve: {error}"));
    let system = Accounts::from_system().expect("the account databases should be readable");
    let daemon = system.uid("daemon").expect("daemon should exist");
    let nogroup = system.gid("nogroup").expect("nogroup should exist");
    assert_eq!(principal_of(&policy, 0, 0), Some("system"), "root");
    assert_eq!(
        principal_of(&policy, daemon, 54321),
        Some("system"),
        "daemon"
    );
    assert_eq!(
        principal_of(&policy, 4_000_000_000, 1),
        Some("system"),
        "uid"
    );
    assert_eq!(principal_of(&policy, 54321, nogroup), Some("system"), "gid");
    assert_eq!(principal_of(&policy, 54321, 54321), None, "stranger");
}

#[test]
fn system_group_membership() {
    // Find a group of this machine that lists an existing user other than
    // one whose primary group it is, so that only the member list matches.
    let system = Accounts::from_system().expect("the account databases should be readable");
    let found = system.groups.iter().find_map(|(group, gid, members)| {
        members.iter().find_map(|member| {
            let (_, uid, primary) = system.users.iter().find(|(name, ..)| name == member)?;
            (primary != gid).then(|| (group.clone(), *uid, *primary))
        })
    });
    let Some((group, uid, primary)) = found else {
        eprintln!("no /etc/group entry lists a user here; covered by the fixture test");
        return;
    };
    let policy = Policy::parse(
        &format!("[[principal]]\nname = \"members\"\ngroups = [{group:?}]\n"),
        "system.toml",
    )
    .unwrap_or_else(|error| panic!("group {group:?} should resolve: {error}"));
    assert_eq!(
        principal_of(&policy, uid, primary),
        Some("members"),
        "uid {uid}, a listed member of {group:?}, should match"
    );
}

#[test]
fn interface_wildcards() {
    let policy = parse(
        r#"
[[principal]]
name = "p"
users = [1]
interfaces = ["veth*", "eth0"]

[[principal]]
name = "any"
users = [2]
interfaces = ["*"]
"#,
    );
    let rules = rules_for(&policy, 1, 1).expect("uid 1 should match");
    for allowed in ["veth0", "veth-lab1", "veth", "eth0"] {
        assert!(
            rules.allows_interface(allowed),
            "{allowed} should be allowed"
        );
    }
    for refused in ["eth1", "eth00", "eth", "lo", "xveth0", ""] {
        assert!(
            !rules.allows_interface(refused),
            "{refused:?} should be refused"
        );
    }
    let any = rules_for(&policy, 2, 2).expect("uid 2 should match");
    assert!(any.allows_interface("lo"), "* allows lo");
    assert!(any.allows_interface("wlp3s0"), "* allows wlp3s0");
}

#[test]
fn netns_own_is_empty_or_dash_and_star_is_any() {
    let policy = parse(
        r#"
[[principal]]
name = "dash"
users = [1]
netns = ["-", "lab1"]

[[principal]]
name = "empty"
users = [2]
netns = [""]

[[principal]]
name = "any"
users = [3]
netns = ["*"]

[[principal]]
name = "lab-only"
users = [4]
netns = ["lab1"]
"#,
    );
    for uid in [1, 2] {
        let rules = rules_for(&policy, uid, uid).expect("uid should match");
        assert!(rules.allows_netns(""), "{}: \"\" allowed", rules.principal);
        assert!(
            rules.allows_netns("-"),
            "{}: \"-\" allowed",
            rules.principal
        );
        assert!(
            !rules.allows_netns("lab2"),
            "{}: lab2 refused",
            rules.principal
        );
    }
    let dash = rules_for(&policy, 1, 1).expect("uid 1 should match");
    assert!(dash.allows_netns("lab1"), "dash: lab1 allowed");
    let any = rules_for(&policy, 3, 3).expect("uid 3 should match");
    for netns in ["", "-", "lab1", "/proc/1/ns/net"] {
        assert!(any.allows_netns(netns), "* should allow {netns:?}");
    }
    let lab = rules_for(&policy, 4, 4).expect("uid 4 should match");
    assert!(lab.allows_netns("lab1"), "lab-only: lab1 allowed");
    assert!(!lab.allows_netns(""), "lab-only: own namespace refused");
    assert!(!lab.allows_netns("-"), "lab-only: own namespace refused");
}

#[test]
fn directions() {
    let policy = parse(
        r#"
[[principal]]
name = "in"
users = [1]
directions = ["in"]

[[principal]]
name = "out"
users = [2]
directions = ["out", "out"]

[[principal]]
name = "none"
users = [3]
directions = []
"#,
    );
    let inbound = rules_for(&policy, 1, 1).expect("uid 1 should match");
    assert!(inbound.allows_direction(true, false), "in: in allowed");
    assert!(!inbound.allows_direction(false, true), "in: out refused");
    assert!(!inbound.allows_direction(true, true), "in: both refused");
    let outbound = rules_for(&policy, 2, 2).expect("uid 2 should match");
    assert!(outbound.allows_direction(false, true), "out: out allowed");
    assert!(!outbound.allows_direction(true, false), "out: in refused");
    let none = rules_for(&policy, 3, 3).expect("uid 3 should match");
    assert!(!none.allows_direction(true, false), "none: in refused");
    assert!(!none.allows_direction(false, true), "none: out refused");
}

#[test]
fn unknown_user_and_group_name_their_line() {
    assert_invalid(
        "[[principal]]\nname = \"a\"\nusers = [\"alice\"]\n\n[[principal]]\nname = \"b\"\nusers = [\n  \"alice\",\n  \"mallory\",\n]\n",
        9,
        "b",
        "unknown user \"mallory\"",
    );
    assert_invalid(
        "[[principal]]\nname = \"g\"\nusers = [1]\ngroups = [\"wheel\", \"nosuchgroup\"]\n",
        4,
        "g",
        "unknown group \"nosuchgroup\"",
    );
}

#[test]
fn display_names_file_line_and_principal() {
    let mut text = String::from("# researchers' access\n");
    text.push_str(&"\n".repeat(9));
    text.push_str("[[principal]]\nusers = [\"bob\", \"mallory\"]\nname = \"researchers\"\n");
    // "bob" exists in the fixture; make it unknown by dropping the fixture.
    let error = Policy::parse_with(&text, "policy.toml", &Accounts::default())
        .expect_err("bob is unknown without accounts");
    assert_eq!(
        error.to_string(),
        "policy.toml line 12: principal \"researchers\": unknown user \"bob\"",
        "the documented message form"
    );
}

#[test]
fn missing_users_and_groups_names_the_principal_line() {
    assert_invalid(
        "[[principal]]\nname = \"ok\"\nusers = [1]\n\n# next\n[[principal]]\nname = \"nobody\"\nnetns = [\"*\"]\n",
        6,
        "nobody",
        "users or groups",
    );
    assert_invalid(
        "[[principal]]\nname = \"empty\"\nusers = []\ngroups = []\n",
        1,
        "empty",
        "users or groups",
    );
}

#[test]
fn duplicate_name_names_the_second() {
    assert_invalid(
        "[[principal]]\nname = \"twin\"\nusers = [1]\n[[principal]]\nusers = [2]\nname = \"twin\"\n",
        6,
        "twin",
        "another principal",
    );
}

#[test]
fn bad_direction_names_its_line() {
    assert_invalid(
        "[[principal]]\nname = \"d\"\nusers = [1]\ndirections = [\n  \"in\",\n  \"sideways\",\n]\n",
        6,
        "d",
        "unknown direction \"sideways\"",
    );
}

#[test]
fn snaplen_out_of_range_names_its_line() {
    assert_invalid(
        "[[principal]]\nname = \"s\"\nusers = [1]\nmax_snaplen = 0\n",
        4,
        "s",
        "max_snaplen 0",
    );
    assert_invalid(
        "[[principal]]\nname = \"s\"\nusers = [1]\n\nmax_snaplen = 262145\n",
        5,
        "s",
        "max_snaplen 262145",
    );
    parse("[[principal]]\nname = \"s\"\nusers = [1]\nmax_snaplen = 262144\n");
}

#[test]
fn ring_bytes_out_of_range_names_its_line() {
    assert_invalid(
        "[[principal]]\nname = \"r\"\nusers = [1]\nring_bytes = 4095\n",
        4,
        "r",
        "ring_bytes 4095",
    );
    assert_invalid(
        "[[principal]]\nname = \"r\"\nusers = [1]\n\n\nring_bytes = 1073741825\n",
        6,
        "r",
        "ring_bytes 1073741825",
    );
    parse("[[principal]]\nname = \"r\"\nusers = [1]\nring_bytes = 4096\n");
    parse("[[principal]]\nname = \"r\"\nusers = [1]\nring_bytes = 1073741824\n");
}

#[test]
fn bad_filter_names_its_line() {
    assert_invalid(
        "[[principal]]\nname = \"f\"\nusers = [1]\nfilter = \"tcp port eleventy and\"\n",
        4,
        "f",
        "cannot compile filter",
    );
    let policy = parse("[[principal]]\nname = \"f\"\nusers = [1]\nfilter = \"  \"\n");
    assert_eq!(
        rules_for(&policy, 1, 1).expect("uid 1 should match").filter,
        None,
        "a blank filter is no filter"
    );
}

#[test]
fn inject_keys_take_their_defaults_and_values() {
    let rules = |text: &str| {
        parse(&format!("[[principal]]\nname = \"j\"\nusers = [1]\n{text}"))
            .rules_for(&peer(1, 1))
            .expect("uid 1 should match")
            .inject
            .clone()
    };
    assert_eq!(rules(""), None, "no inject_filter: no injection");
    assert_eq!(
        rules("inject_filter = \"\"\n"),
        Some(InjectRules {
            filter: String::new(),
            rate_pps: DEFAULT_INJECT_RATE_PPS,
            rate_bps: DEFAULT_INJECT_RATE_BPS,
            spoof: false,
        }),
        "a blank filter allows injection with the default limits"
    );
    assert_eq!(
        rules(
            "inject_filter = \"udp\"\ninject_rate_pps = 5\ninject_rate_bps = 7000\n\
             inject_spoof = true\n"
        ),
        Some(InjectRules {
            filter: "udp".to_owned(),
            rate_pps: 5,
            rate_bps: 7000,
            spoof: true,
        }),
    );
    assert_eq!(
        rules("inject_filter = \"udp\"\ninject_spoof = false\n").map(|inject| inject.spoof),
        Some(false)
    );
}

#[test]
fn bad_inject_keys_name_their_line() {
    assert_invalid(
        "[[principal]]\nname = \"j\"\nusers = [1]\n\ninject_filter = \"udp port\"\n",
        5,
        "j",
        "cannot compile filter",
    );
    assert_invalid(
        "[[principal]]\nname = \"j\"\nusers = [1]\ninject_filter = \"udp\"\ninject_rate_pps = 0\n",
        5,
        "j",
        "inject_rate_pps 0",
    );
    assert_invalid(
        "[[principal]]\nname = \"j\"\nusers = [1]\ninject_filter = \"\"\ninject_rate_bps = 0\n",
        5,
        "j",
        "inject_rate_bps 0",
    );
    for key in [
        "inject_rate_pps = 3",
        "inject_rate_bps = 3",
        "inject_spoof = true",
    ] {
        assert_invalid(
            &format!("[[principal]]\nname = \"j\"\nusers = [1]\n\n{key}\n"),
            5,
            "j",
            "without inject_filter",
        );
    }
    assert_syntax(
        "[[principal]]\nname = \"j\"\nusers = [1]\ninject_filter = \"\"\ninject_rate_pps = -1\n",
        5,
        "",
    );
    assert_syntax(
        "[[principal]]\nname = \"j\"\nusers = [1]\ninject_filter = \"\"\ninject_spoof = \"yes\"\n",
        5,
        "",
    );
    assert_syntax(
        "[[principal]]\nname = \"j\"\nusers = [1]\ninject_filter = \"\"\ninject_rate = 1\n",
        5,
        "inject_rate",
    );
}

#[test]
fn bad_netns_and_interface_name_their_lines() {
    assert_invalid(
        "[[principal]]\nname = \"n\"\nusers = [1]\nnetns = [\"ok\", \"../etc\"]\n",
        4,
        "n",
        "invalid network namespace",
    );
    assert_invalid(
        "[[principal]]\nname = \"i\"\nusers = [1]\ninterfaces = [\"eth*0\"]\n",
        4,
        "i",
        "only a trailing *",
    );
    assert_invalid(
        "[[principal]]\nname = \"i\"\nusers = [1]\ninterfaces = [\"a-very-long-interface-name\"]\n",
        4,
        "i",
        "1 to 15 bytes",
    );
    assert_invalid(
        "[[principal]]\nname = \"i\"\nusers = [1]\ninterfaces = [\"eth0:1\"]\n",
        4,
        "i",
        "no /, :",
    );
}

#[test]
fn empty_name_is_refused() {
    assert_invalid("[[principal]]\nname = \"\"\nusers = [1]\n", 2, "", "empty");
}

#[test]
fn syntax_error_names_its_line() {
    assert_syntax(
        "[[principal]]\nname = \"x\"\nusers = [1]\nnetns = [\"a\"\n",
        4,
        "",
    );
    assert_syntax("[[principal]]\nname = \"x\"\n\nusers = [1\n", 4, "");
}

#[test]
fn unknown_keys_name_their_line() {
    assert_syntax(
        "[[principal]]\nname = \"x\"\nusers = [1]\n\nmax_sesions = 3\n",
        5,
        "max_sesions",
    );
    assert_syntax("verbose = true\n", 1, "verbose");
}

#[test]
fn wrong_types_name_their_line() {
    assert_syntax("[[principal]]\nname = \"x\"\nusers = [1, -5]\n", 3, "");
    assert_syntax(
        "[[principal]]\nname = \"x\"\nusers = [1]\npacket_quota = -1\n",
        4,
        "",
    );
    assert_syntax("[[principal]]\nusers = [1]\n", 1, "name");
}

#[test]
fn from_file_reads_and_names_the_file() {
    let dir = std::env::temp_dir().join(format!("pktd-policy-test-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir should be creatable");
    let path = dir.join("policy.toml");
    fs::write(
        &path,
        "[[principal]]\nname = \"root\"\nusers = [0]\nmax_snaplen = 0\n",
    )
    .expect("policy file should be writable");
    let error = Policy::from_file(&path).expect_err("max_snaplen 0 should be refused");
    assert!(
        error
            .to_string()
            .starts_with(&format!("{} line 4: ", path.display())),
        "message should name the file and line: {error}"
    );
    fs::write(
        &path,
        "[[principal]]\nname = \"root\"\nusers = [\"root\"]\n",
    )
    .expect("policy file should be writable");
    let policy = Policy::from_file(&path).expect("a valid file should load");
    assert_eq!(principal_of(&policy, 0, 0), Some("root"));
    fs::remove_dir_all(&dir).expect("temp dir should be removable");

    match Policy::from_file(&path) {
        Err(PolicyError::Read { path: got, .. }) => assert_eq!(got, path, "read error path"),
        other => panic!("a missing file should give a Read error, got {other:?}"),
    }
}

#[test]
fn snap_headers_is_the_one_snap_value() {
    let policy = Policy::parse_with(
        "[[principal]]\nname = \"r\"\nusers = [1]\nsnap = \"headers\"\n",
        "policy.toml",
        &accounts(),
    )
    .expect("snap = \"headers\" is valid");
    assert!(rules_for(&policy, 1, 1).unwrap().snap_headers);
    let policy = Policy::parse_with(
        "[[principal]]\nname = \"r\"\nusers = [1]\n",
        "policy.toml",
        &accounts(),
    )
    .unwrap();
    assert!(
        !rules_for(&policy, 1, 1).unwrap().snap_headers,
        "whole packets by default"
    );
    assert_invalid(
        "[[principal]]\nname = \"r\"\nusers = [1]\n\nsnap = \"payload\"\n",
        5,
        "r",
        "the one value is \"headers\"",
    );
}

/// A key file of `bytes` with `mode`, removed on drop.
struct KeyFile(std::path::PathBuf);

impl KeyFile {
    fn new(tag: &str, bytes: &[u8], mode: u32) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let path =
            std::env::temp_dir().join(format!("pktd-policy-key-{tag}-{}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        Self(path)
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn anonymized(table: &str) -> String {
    format!("[[principal]]\nname = \"r\"\nusers = [1]\nanonymize = {{ {table} }}\n")
}

#[test]
fn anonymize_reads_its_key_and_defaults_to_hiding_macs_and_payloads() {
    let key = KeyFile::new("good", &[7; 32], 0o600);
    let policy = Policy::parse_with(
        &anonymized(&format!("key_file = \"{}\"", key.0.display())),
        "policy.toml",
        &accounts(),
    )
    .expect("a valid anonymize table");
    let anonymize = rules_for(&policy, 1, 1).unwrap().anonymize.clone().unwrap();
    assert_eq!(anonymize.mac, pktd_anon::MacMode::Zero);
    assert_eq!(anonymize.payload, pktd_anon::PayloadMode::Zero);
    assert!(
        !format!("{anonymize:?}").contains("7, 7"),
        "Debug never shows the key"
    );
}

#[test]
fn anonymize_refuses_bad_keys_and_values_naming_the_line() {
    let good = KeyFile::new("ok", &[7; 32], 0o600);
    let short = KeyFile::new("short", &[7; 31], 0o600);
    let long = KeyFile::new("long", &[7; 33], 0o600);
    let shared = KeyFile::new("shared", &[7; 32], 0o640);
    let link = std::env::temp_dir().join(format!("pktd-policy-key-link-{}", std::process::id()));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&good.0, &link).unwrap();
    let file = |key: &std::path::Path| format!("key_file = \"{}\"", key.display());
    for (table, needle) in [
        (file(&short.0), "31 bytes, not 32"),
        (file(&long.0), "33 bytes, not 32"),
        (file(&shared.0), "group or others"),
        (file(&link), "key_file"),
        (
            "key_file = \"/nonexistent/pktd.key\"".to_owned(),
            "No such file",
        ),
        (
            "key_file = \"relative.key\"".to_owned(),
            "not an absolute path",
        ),
        ("mac = \"keep\"".to_owned(), "needs key_file"),
        (
            format!("mac = \"scramble\", {}", file(&good.0)),
            "one of \"zero\", \"hash\", \"keep\"",
        ),
        (
            format!("payload = \"half\", {}", file(&good.0)),
            "one of \"zero\", \"keep\"",
        ),
        (
            format!("ip = \"keep\", {}", file(&good.0)),
            "prefix-preserving",
        ),
    ] {
        assert_invalid(&anonymized(&table), 4, "r", needle);
    }
    let _ = std::fs::remove_file(&link);
    match error(&anonymized(&format!("colour = \"red\", {}", file(&good.0)))) {
        PolicyError::Syntax { line, message, .. } => {
            assert_eq!(line, 4);
            assert!(message.contains("colour"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_anonymized_principal_may_not_inject() {
    let key = KeyFile::new("inject", &[7; 32], 0o600);
    assert_invalid(
        &format!(
            "[[principal]]\nname = \"r\"\nusers = [1]\ninject_filter = \"\"\nanonymize = {{ key_file = \"{}\" }}\n",
            key.0.display()
        ),
        5,
        "r",
        "may not inject",
    );
}
