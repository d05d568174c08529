//! A source of synthetic people: the same seed gives the same rows, so a
//! test or a demo can migrate a table of any size without a database.
//!
//! ```toml
//! [source]
//! type = "plugin"
//! plugin = "credvault_generator.wasm"
//! config = { seed = 42, rows = 1000, table = "people" }
//! ```

use credvault_sdk::prelude::*;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    seed: u64,
    rows: u64,
    #[serde(default = "default_table")]
    table: String,
}

fn default_table() -> String {
    "people".into()
}

const FIRST: [&str; 8] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken",
];
const LAST: [&str; 8] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson",
];

struct Generator;

/// Reads rows `next..=end` by id.
struct People {
    seed: u64,
    next: u64,
    end: u64,
}

fn columns() -> Vec<Column> {
    vec![
        Column::new("id", ColumnType::Int).not_null(),
        Column::new("name", ColumnType::Text),
        Column::new("email", ColumnType::Text),
        Column::new("score", ColumnType::Float),
        Column::new("born", ColumnType::Date),
        Column::new("active", ColumnType::Boolean),
    ]
}

impl Source for Generator {
    type Config = Config;
    type Reader = People;

    fn discover(config: &Config) -> Result<Vec<TableInfo>, String> {
        Ok(vec![TableInfo {
            name: config.table.clone(),
            columns: columns(),
            primary_key: vec!["id".into()],
            approx_rows: Some(config.rows),
        }])
    }

    fn open(config: &Config, table: &str, after: Option<&str>) -> Result<People, String> {
        if table != config.table {
            return Err(format!(
                "no table `{table}`: this generator makes `{}`",
                config.table
            ));
        }
        let last = match after {
            Some(p) => p
                .parse::<u64>()
                .map_err(|_| format!("bad position `{p}`"))?,
            None => 0,
        };
        Ok(People {
            seed: config.seed,
            next: last + 1,
            end: config.rows,
        })
    }
}

impl Reader for People {
    fn next(&mut self, max_rows: usize) -> Result<Option<SourceBatch>, String> {
        if self.next > self.end {
            return Ok(None);
        }
        let last = (self.next + max_rows as u64 - 1).min(self.end);
        let rows = (self.next..=last).map(|id| person(self.seed, id)).collect();
        self.next = last + 1;
        Ok(Some(SourceBatch {
            rows,
            position: last.to_string(),
        }))
    }
}

/// SplitMix64: a good, tiny, deterministic mixer.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn person(seed: u64, id: u64) -> Vec<Value> {
    let r = mix(seed ^ mix(id));
    let first = FIRST[(r % 8) as usize];
    let last = LAST[((r >> 8) % 8) as usize];
    let score = ((r >> 16) % 10_000) as f64 / 100.0;
    let born = -7_300 + ((r >> 32) % 14_600) as i32;
    vec![
        Value::Int(id as i64),
        Value::Text(format!("{first} {last}")),
        Value::Text(format!(
            "{}.{}{id}@example.com",
            first.to_lowercase(),
            last.to_lowercase()
        )),
        if (r >> 40).is_multiple_of(10) {
            Value::Null
        } else {
            Value::Float(score)
        },
        Value::Date(born),
        Value::Boolean((r >> 48).is_multiple_of(2)),
    ]
}

export_source!(Generator);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_rows_and_resumes_exactly() {
        let config = Config {
            seed: 7,
            rows: 10,
            table: "people".into(),
        };
        let mut all = Generator::open(&config, "people", None).unwrap();
        let first = all.next(10).unwrap().unwrap();
        assert_eq!(first.rows.len(), 10);
        let mut again = Generator::open(&config, "people", Some("4")).unwrap();
        let rest = again.next(100).unwrap().unwrap();
        assert_eq!(rest.rows, first.rows[4..]);
        assert_eq!(rest.position, "10");
        assert!(again.next(100).unwrap().is_none());
    }
}
