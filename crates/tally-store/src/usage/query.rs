//! Reading aggregates: one page of the contract's rows for a reported window.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult, Statement, Value};
use tally_core::{Granularity, InstanceData, Quantity};
use uuid::Uuid;

use super::UsageStore;
use super::encoding::{StoredQuantity, UnixMicros, UnixSeconds};
use crate::db::Backend;
use crate::error::StoreError;
use crate::guid;
use crate::sql::Sql;

/// Where a row sits in the stable page order: usage bucket, then subscription, meter, instance.
/// Continuation tokens carry the last one returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowKey {
    pub usage_bucket: UnixSeconds,
    pub subscription_key: i64,
    pub meter_key: i64,
    pub instance_key: i64,
}

#[derive(Clone, Debug)]
pub struct PageRequest {
    pub granularity: Granularity,
    /// Reported window, start inclusive, end exclusive, aligned to `granularity`.
    pub reported_start: DateTime<Utc>,
    pub reported_end: DateTime<Utc>,
    /// Only these subscriptions, when set.
    pub subscriptions: Option<Vec<Uuid>>,
    /// Rows strictly after this key.
    pub after: Option<RowKey>,
    pub limit: usize,
    /// One row per (usage bucket, subscription, meter), summed over instance data.
    pub sum_instances: bool,
}

/// The instance key of a row summed over instance data: it stands for every instance of its
/// meter, so a cursor on it is past them all.
pub const SUMMED_INSTANCES: i64 = i64::MAX;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggregateRow {
    pub key: RowKey,
    pub subscription_id: Uuid,
    pub meter_id: Uuid,
    pub usage_start: DateTime<Utc>,
    pub usage_end: DateTime<Utc>,
    pub quantity: Quantity,
    pub instance: InstanceData,
}

#[derive(Clone, Debug, Default)]
pub struct Page {
    pub rows: Vec<AggregateRow>,
    /// Whether rows follow the last one returned.
    pub more: bool,
}

/// How far the aggregates are final, and how late records have arrived so far.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub complete_through: DateTime<Utc>,
    max_lateness_hourly_seconds: i64,
    max_lateness_daily_seconds: i64,
}

/// Which subscriptions' rows a page holds, by key.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SubscriptionKeys {
    All,
    Only(Vec<i32>),
}

/// One index range of the rows after a cursor: some leading key columns equal to the cursor's,
/// then the next column after it. Every index can seek to such a range.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seek {
    equal: Vec<(&'static str, i64)>,
    after: Option<(&'static str, i64)>,
}

/// The rows after `cursor` (all rows without one), in key order, as ranges: the rest of the
/// cursor's instance list (none after a summed row), meter, subscription and usage bucket, then
/// the next bucket, then the buckets after it. (A single row-value comparison would make SQLite
/// scan the cursor's whole bucket.)
fn seeks_after(cursor: Option<RowKey>, granularity: Granularity) -> Vec<Seek> {
    let Some(c) = cursor else {
        return vec![Seek {
            equal: vec![],
            after: None,
        }];
    };
    let bucket = c.usage_bucket.stored();
    // Buckets are aligned, so the next one is one step on.
    let next_bucket = c.usage_bucket.next_bucket(granularity).stored();
    let rest_of_instances = (c.instance_key != SUMMED_INSTANCES).then_some(Seek {
        equal: vec![
            ("usage_bucket", bucket),
            ("subscription_key", c.subscription_key),
            ("meter_key", c.meter_key),
        ],
        after: Some(("instance_key", c.instance_key)),
    });
    rest_of_instances
        .into_iter()
        .chain([
            Seek {
                equal: vec![
                    ("usage_bucket", bucket),
                    ("subscription_key", c.subscription_key),
                ],
                after: Some(("meter_key", c.meter_key)),
            },
            Seek {
                equal: vec![("usage_bucket", bucket)],
                after: Some(("subscription_key", c.subscription_key)),
            },
            // The next bucket by equality first: the page that crosses into it was the slowest of
            // all on SQLite with the open range alone.
            Seek {
                equal: vec![("usage_bucket", next_bucket)],
                after: None,
            },
            Seek {
                equal: vec![],
                after: Some(("usage_bucket", next_bucket)),
            },
        ])
        .collect()
}

/// A page's query, but for the range it seeks and how many rows it still wants.
struct PageQuery<'a> {
    table: &'static str,
    /// The largest lateness folded so far for this granularity.
    lateness_seconds: i64,
    reported_start: UnixSeconds,
    reported_end: UnixSeconds,
    subscriptions: &'a SubscriptionKeys,
    sum_instances: bool,
}

impl PageQuery<'_> {
    /// Up to `limit` rows of `seek`, with their instance data, in key order.
    fn statement(&self, backend: Backend, seek: &Seek, limit: usize) -> Statement {
        let table = self.table;
        // Summed rows carry the same columns, with empty instance data.
        let (outer, group) = if self.sum_instances {
            (
                format!(
                    "SELECT p.usage_bucket, p.subscription_key, p.meter_key, {SUMMED_INSTANCES}, p.units, p.fraction, \
                     '', '', '{{}}', '{{}}' FROM (\
                     SELECT usage_bucket, subscription_key, meter_key, "
                ),
                "usage_bucket, subscription_key, meter_key",
            )
        } else {
            (
                "SELECT p.usage_bucket, p.subscription_key, p.meter_key, p.instance_key, p.units, p.fraction, \
                 i.resource_uri, i.location, i.tags, i.additional_info FROM (\
                 SELECT usage_bucket, subscription_key, meter_key, instance_key, "
                    .to_string(),
                "usage_bucket, subscription_key, meter_key, instance_key",
            )
        };
        let mut sql = Sql::new(
            backend,
            &format!(
                "{outer}CAST(SUM(qty_units) AS BIGINT) AS units, CAST(SUM(qty_frac) AS BIGINT) AS fraction \
                 FROM {table} WHERE "
            ),
        );
        // Usage never follows its report, and never precedes it by more than the largest
        // lateness folded so far: this bounds the scan to the window's own neighbourhood.
        let start = self.reported_start.stored();
        let end = self.reported_end.stored();
        sql.push("usage_bucket >= ")
            .bind(start - self.lateness_seconds)
            .push(" AND usage_bucket < ")
            .bind(end)
            .push(" AND reported_bucket >= ")
            .bind(start)
            .push(" AND reported_bucket < ")
            .bind(end);
        match self.subscriptions {
            SubscriptionKeys::All => {}
            SubscriptionKeys::Only(keys) => match keys.as_slice() {
                [key] => {
                    sql.push(" AND subscription_key = ").bind(*key);
                }
                keys => {
                    sql.push(" AND subscription_key IN ")
                        .bind_tuple(keys.iter().map(|k| Value::Int(Some(*k))));
                }
            },
        }
        for (column, value) in &seek.equal {
            sql.push(&format!(" AND {column} = ")).bind(*value);
        }
        if let Some((column, value)) = seek.after {
            sql.push(&format!(" AND {column} > ")).bind(value);
        }
        sql.push(&format!(" GROUP BY {group} ORDER BY {group} LIMIT "))
            .bind(limit as i64);
        if self.sum_instances {
            sql.push(") p ORDER BY p.usage_bucket, p.subscription_key, p.meter_key");
        } else {
            sql.push(
                ") p JOIN usage_instance i ON i.key = p.instance_key \
                 ORDER BY p.usage_bucket, p.subscription_key, p.meter_key, p.instance_key",
            );
        }
        sql.build()
    }
}

/// A page row as read, before its subscription and meter keys are resolved.
struct StoredRow {
    key: RowKey,
    quantity: Quantity,
    instance: InstanceData,
}

fn read_row(row: &QueryResult) -> Result<StoredRow, StoreError> {
    let key = RowKey {
        usage_bucket: UnixSeconds::from_stored(row.try_get_by_index(0)?),
        subscription_key: row.try_get_by_index::<i32>(1)?.into(),
        meter_key: row.try_get_by_index::<i32>(2)?.into(),
        instance_key: row.try_get_by_index(3)?,
    };
    let quantity = StoredQuantity {
        units: row.try_get_by_index(4)?,
        fraction: row.try_get_by_index(5)?,
    }
    .to_quantity()?;
    let instance = InstanceData {
        resource_uri: row.try_get_by_index(6)?,
        location: row.try_get_by_index(7)?,
        tags: from_json(&row.try_get_by_index::<String>(8)?)?,
        additional_info: from_json(&row.try_get_by_index::<String>(9)?)?,
    };
    Ok(StoredRow {
        key,
        quantity,
        instance,
    })
}

impl UsageStore {
    /// Read before the page it qualifies: the page then holds at least what this promises.
    pub async fn progress(&self) -> Result<Progress, StoreError> {
        let row = self
            .db
            .reader()
            .query_one_raw(
                self.sql(
                    "SELECT complete_through, max_lateness_hourly, max_lateness_daily FROM usage_pipeline WHERE id = 1",
                )
                .build(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("usage_pipeline has no row".into()))?;
        Ok(Progress {
            complete_through: UnixMicros::from_stored(row.try_get_by_index(0)?).to_utc(),
            max_lateness_hourly_seconds: row.try_get_by_index(1)?,
            max_lateness_daily_seconds: row.try_get_by_index(2)?,
        })
    }

    /// One page of rows of `request`'s reported window, in key order.
    pub async fn page(
        &self,
        request: &PageRequest,
        progress: &Progress,
    ) -> Result<Page, StoreError> {
        let subscriptions = match &request.subscriptions {
            None => SubscriptionKeys::All,
            Some(ids) => {
                let keys = self.subscription_keys(ids).await?;
                if keys.is_empty() {
                    // None of them has ever reported usage.
                    return Ok(Page::default());
                }
                SubscriptionKeys::Only(keys)
            }
        };
        let (table, lateness_seconds) = match request.granularity {
            Granularity::Hourly => ("usage_hourly", progress.max_lateness_hourly_seconds),
            Granularity::Daily => ("usage_daily", progress.max_lateness_daily_seconds),
        };
        let query = PageQuery {
            table,
            lateness_seconds,
            reported_start: UnixSeconds::bucket_of(request.granularity, request.reported_start),
            reported_end: UnixSeconds::bucket_of(request.granularity, request.reported_end),
            subscriptions: &subscriptions,
            sum_instances: request.sum_instances,
        };
        let wanted = request.limit + 1;
        let mut stored = Vec::with_capacity(wanted);
        for seek in seeks_after(request.after, request.granularity) {
            if stored.len() == wanted {
                break;
            }
            let statement = query.statement(self.engine.backend(), &seek, wanted - stored.len());
            for row in self.db.reader().query_all_raw(statement).await? {
                stored.push(read_row(&row)?);
            }
        }
        let more = stored.len() > request.limit;
        stored.truncate(request.limit);
        let rows = self.resolve_ids(stored, request.granularity).await?;
        Ok(Page { rows, more })
    }

    /// The rows with their subscription and meter ids in place of keys.
    async fn resolve_ids(
        &self,
        stored: Vec<StoredRow>,
        granularity: Granularity,
    ) -> Result<Vec<AggregateRow>, StoreError> {
        let subscription_key = |key: &RowKey| {
            i32::try_from(key.subscription_key).map_err(|_| {
                StoreError::Corrupt(format!("subscription key {}", key.subscription_key))
            })
        };
        let subscription_ids = self
            .subscription_ids(
                stored
                    .iter()
                    .map(|row| subscription_key(&row.key))
                    .collect::<Result<Vec<_>, _>>()?,
            )
            .await?;
        let mut rows = Vec::with_capacity(stored.len());
        for StoredRow {
            key,
            quantity,
            instance,
        } in stored
        {
            let meter_id = i32::try_from(key.meter_key)
                .ok()
                .and_then(|meter_key| self.read_dictionary().meter_id(meter_key))
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("meter key {} is unknown", key.meter_key))
                })?;
            let subscription_id = *subscription_ids
                .get(&subscription_key(&key)?)
                .ok_or_else(|| StoreError::Corrupt("a subscription key is unknown".into()))?;
            rows.push(AggregateRow {
                key,
                subscription_id,
                meter_id,
                usage_start: key.usage_bucket.to_utc(),
                usage_end: key.usage_bucket.next_bucket(granularity).to_utc(),
                quantity,
                instance,
            });
        }
        Ok(rows)
    }

    /// Keys of the given subscriptions, sorted; ones never seen have no usage and no key.
    async fn subscription_keys(&self, ids: &[Uuid]) -> Result<Vec<i32>, StoreError> {
        let mut keys = Vec::new();
        let mut missing = Vec::new();
        {
            let dictionary = self.read_dictionary();
            for id in ids {
                match dictionary.subscription_key(id) {
                    Some(key) => keys.push(key),
                    None => missing.push(*id),
                }
            }
        }
        if !missing.is_empty() {
            let mut select = self.sql(
                "SELECT key, subscription_id FROM usage_subscription WHERE subscription_id IN ",
            );
            select.bind_tuple(missing.iter().map(|id| Value::from(guid::to_text(id))));
            let mut dictionary_updates = Vec::new();
            for row in self.db.reader().query_all_raw(select.build()).await? {
                let key: i32 = row.try_get_by_index(0)?;
                let id: String = row.try_get_by_index(1)?;
                if let Ok(id) = guid::from_text(&id) {
                    dictionary_updates.push((id, key));
                }
                keys.push(key);
            }
            let mut dictionary = self.write_dictionary();
            for (id, key) in dictionary_updates {
                dictionary.learn_subscription(id, key);
            }
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    async fn subscription_ids(
        &self,
        keys: impl IntoIterator<Item = i32>,
    ) -> Result<HashMap<i32, Uuid>, StoreError> {
        let mut ids = HashMap::new();
        let mut missing = Vec::new();
        {
            let dictionary = self.read_dictionary();
            for key in keys {
                match dictionary.subscription_id(key) {
                    Some(id) => {
                        ids.insert(key, id);
                    }
                    None => missing.push(key),
                }
            }
        }
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            let mut select =
                self.sql("SELECT key, subscription_id FROM usage_subscription WHERE key IN ");
            select.bind_tuple(missing.iter().map(|k| Value::Int(Some(*k))));
            for row in self.db.reader().query_all_raw(select.build()).await? {
                let key: i32 = row.try_get_by_index(0)?;
                let id = guid::from_text(&row.try_get_by_index::<String>(1)?)?;
                ids.insert(key, id);
                self.write_dictionary().learn_subscription(id, key);
            }
        }
        if let Some(key) = missing.iter().find(|k| !ids.contains_key(k)) {
            return Err(StoreError::Corrupt(format!(
                "subscription key {key} is unknown"
            )));
        }
        Ok(ids)
    }
}

fn from_json(text: &str) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("stored map is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::tests::values;
    use crate::usage::encoding::tests::utc;

    fn cursor() -> RowKey {
        RowKey {
            usage_bucket: UnixSeconds::from_stored(7_200),
            subscription_key: 3,
            meter_key: 4,
            instance_key: 5,
        }
    }

    #[test]
    fn without_a_cursor_one_range_holds_every_row() {
        let seeks = seeks_after(None, Granularity::Hourly);
        assert_eq!(seeks.len(), 1);
        assert!(seeks[0].equal.is_empty() && seeks[0].after.is_none());
    }

    #[test]
    fn after_a_cursor_the_ranges_follow_the_key_order() {
        let seeks = seeks_after(Some(cursor()), Granularity::Daily);
        let query = PageQuery {
            table: "usage_daily",
            lateness_seconds: 86_400,
            reported_start: UnixSeconds::from_stored(86_400),
            reported_end: UnixSeconds::from_stored(3 * 86_400),
            subscriptions: &SubscriptionKeys::All,
            sum_instances: false,
        };
        let conditions: Vec<String> = seeks
            .iter()
            .map(|seek| {
                let sql = query.statement(Backend::Sqlite, seek, 10).sql;
                let start = sql.find("reported_bucket < ?").unwrap() + "reported_bucket < ?".len();
                let end = sql.find(" GROUP BY").unwrap();
                sql[start..end].to_string()
            })
            .collect();
        assert_eq!(
            conditions,
            [
                " AND usage_bucket = ? AND subscription_key = ? AND meter_key = ? AND instance_key > ?",
                " AND usage_bucket = ? AND subscription_key = ? AND meter_key > ?",
                " AND usage_bucket = ? AND subscription_key > ?",
                " AND usage_bucket = ?",
                " AND usage_bucket > ?",
            ]
        );
        // The last two start at the next daily bucket.
        assert_eq!(seeks[3].equal, [("usage_bucket", 7_200 + 86_400)]);
        assert_eq!(seeks[4].after, Some(("usage_bucket", 7_200 + 86_400)));
        assert_eq!(seeks[0].after, Some(("instance_key", 5)));
    }

    #[test]
    fn the_page_query_binds_window_lateness_subscriptions_and_seek() {
        let subscriptions = SubscriptionKeys::Only(vec![8, 9]);
        let query = PageQuery {
            table: "usage_hourly",
            lateness_seconds: 3_600,
            reported_start: UnixSeconds::bucket_of(
                Granularity::Hourly,
                utc("2026-11-27T10:00:00Z"),
            ),
            reported_end: UnixSeconds::bucket_of(Granularity::Hourly, utc("2026-11-27T12:00:00Z")),
            subscriptions: &subscriptions,
            sum_instances: false,
        };
        let seeks = seeks_after(Some(cursor()), Granularity::Hourly);
        let statement = query.statement(Backend::Postgres, &seeks[1], 1_001);
        assert!(statement.sql.contains("FROM usage_hourly WHERE usage_bucket >= $1 AND usage_bucket < $2 AND reported_bucket >= $3 AND reported_bucket < $4 AND subscription_key IN ($5, $6) AND usage_bucket = $7 AND subscription_key = $8 AND meter_key > $9 GROUP BY"));
        assert!(
            statement
                .sql
                .contains("LIMIT $10) p JOIN usage_instance i ON i.key = p.instance_key")
        );
        let bound = statement.values.unwrap().0;
        let start = utc("2026-11-27T10:00:00Z").timestamp();
        assert_eq!(bound[0], Value::BigInt(Some(start - 3_600)));
        assert_eq!(bound[3], Value::BigInt(Some(start + 2 * 3_600)));
        assert_eq!(bound[9], Value::BigInt(Some(1_001)));

        let one = SubscriptionKeys::Only(vec![8]);
        let query = PageQuery {
            subscriptions: &one,
            ..query
        };
        let statement = query.statement(
            Backend::Sqlite,
            &seeks_after(None, Granularity::Hourly)[0],
            5,
        );
        assert!(
            statement
                .sql
                .contains("reported_bucket < ? AND subscription_key = ? GROUP BY")
        );
        assert_eq!(values(&statement), 6);
    }
}
