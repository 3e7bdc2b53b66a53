//! The rolling-upgrade rule (README, "Upgrades"): while processes of the
//! previous version still run beside the new one, the new version's
//! migrations may only add to the schema. From the first migration written
//! under that rule on, none drops, renames or retypes anything, nor makes
//! an existing column NOT NULL: an older process would meet a schema it
//! cannot use. (The earlier ones were written before Bitgate ran as several
//! processes.)

use std::path::Path;

/// The first migration written under the rule.
const FIRST_UNDER_THE_RULE: &str = "20261210000001";

/// What an additive migration never does, as the SQL says it (lower case,
/// whitespace squeezed).
const BREAKING: [&str; 6] =
    ["drop table", "drop column", "rename to", "rename column", "set not null", "drop constraint"];

fn breaking_statements(sql: &str) -> Vec<&'static str> {
    let code: String =
        sql.lines().map(|line| line.split("--").next().unwrap_or_default()).collect::<Vec<_>>().join(" ");
    let squeezed = code.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ");
    let mut found: Vec<&'static str> = BREAKING.into_iter().filter(|breaking| squeezed.contains(breaking)).collect();
    // A retyped column (a new column named `type` is fine).
    if squeezed.split("alter column").skip(1).any(|rest| rest.split(';').next().unwrap_or_default().contains(" type "))
    {
        found.push("alter column type");
    }
    found
}

#[test]
fn migrations_since_the_rule_only_add() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < FIRST_UNDER_THE_RULE || !name.ends_with(".sql") {
            continue;
        }
        let found = breaking_statements(&std::fs::read_to_string(&path).unwrap());
        assert!(found.is_empty(), "{name} is not additive ({found:?}): an older process beside it would break");
        checked += 1;
    }
    assert!(checked >= 1, "the rule's first migration is there");
}

#[test]
fn the_check_sees_what_breaks_an_older_process() {
    assert_eq!(
        breaking_statements("ALTER TABLE jobs ADD COLUMN request_id text; -- drop table later"),
        Vec::<&str>::new()
    );
    assert_eq!(breaking_statements("ALTER TABLE jobs\n  DROP   COLUMN payload;"), ["drop column"]);
    assert_eq!(breaking_statements("ALTER TABLE jobs RENAME TO tasks;"), ["rename to"]);
    assert_eq!(breaking_statements("ALTER TABLE jobs ALTER COLUMN kind TYPE varchar(40);"), ["alter column type"]);
    assert_eq!(breaking_statements("ALTER TABLE events ADD COLUMN type text;"), Vec::<&str>::new());
    assert_eq!(breaking_statements("ALTER TABLE jobs ALTER COLUMN kind SET NOT NULL;"), ["set not null"]);
}
