//! Reading aggregates: one page of the contract's rows for a reported window.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{ConnectionTrait, Value};
use tally_core::{Granularity, InstanceData, Quantity};
use uuid::Uuid;

use super::{UsageStore, micros_to_utc};
use crate::error::StoreError;
use crate::sql::Sql;

/// Where a row sits in the stable page order: usage bucket, then subscription, meter, instance.
/// Continuation tokens carry the last one returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowKey {
    pub usage_bucket: i64,
    pub subscription_key: i64,
    pub meter_key: i64,
    pub instance_key: i64,
}

#[derive(Clone, Debug)]
pub struct PageRequest {
    pub granularity: Granularity,
    /// Reported window, Unix seconds, start inclusive, end exclusive, aligned to `granularity`.
    pub reported_start: i64,
    pub reported_end: i64,
    /// Only these subscriptions, when set.
    pub subscriptions: Option<Vec<Uuid>>,
    /// Rows strictly after this key.
    pub after: Option<RowKey>,
    pub limit: usize,
}

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
    max_lateness_hourly: i64,
    max_lateness_daily: i64,
}

impl UsageStore {
    /// Read before the page it qualifies: the page then holds at least what this promises.
    pub async fn progress(&self) -> Result<Progress, StoreError> {
        let row = self
            .db
            .reader()
            .query_one_raw(
                Sql::new(
                    self.db.db_backend(),
                    "SELECT complete_through, max_lateness_hourly, max_lateness_daily FROM usage_pipeline WHERE id = 1",
                )
                .build(),
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("usage_pipeline has no row".into()))?;
        Ok(Progress {
            complete_through: micros_to_utc(row.try_get_by_index(0)?),
            max_lateness_hourly: row.try_get_by_index(1)?,
            max_lateness_daily: row.try_get_by_index(2)?,
        })
    }

    /// One page of rows of `request`'s reported window, in key order.
    pub async fn page(
        &self,
        request: &PageRequest,
        progress: &Progress,
    ) -> Result<Page, StoreError> {
        let (table, lateness) = match request.granularity {
            Granularity::Hourly => ("usage_hourly", progress.max_lateness_hourly),
            Granularity::Daily => ("usage_daily", progress.max_lateness_daily),
        };
        let subscription_keys = match &request.subscriptions {
            None => None,
            Some(ids) => {
                let keys = if ids.is_empty() {
                    Vec::new()
                } else {
                    self.subscription_keys(ids).await?
                };
                if keys.is_empty() {
                    return Ok(Page::default());
                }
                Some(keys)
            }
        };
        // Rows after the cursor, as ranges every index can seek to: the rest of the cursor's
        // instance list, meter, subscription and usage bucket, then the next bucket, then the
        // buckets after it. (Buckets are aligned, so the next one is one step on.)
        let step = request.granularity.seconds();
        let next_bucket = |bucket: i64| bucket + step;
        // (A single row-value comparison would make SQLite scan the cursor's whole bucket.)
        let after: Vec<(&str, Vec<i64>)> = match request.after {
            None => vec![("", vec![])],
            Some(c) => vec![
                (
                    " AND usage_bucket = ? AND subscription_key = ? AND meter_key = ? AND instance_key > ?",
                    vec![
                        c.usage_bucket,
                        c.subscription_key,
                        c.meter_key,
                        c.instance_key,
                    ],
                ),
                (
                    " AND usage_bucket = ? AND subscription_key = ? AND meter_key > ?",
                    vec![c.usage_bucket, c.subscription_key, c.meter_key],
                ),
                (
                    " AND usage_bucket = ? AND subscription_key > ?",
                    vec![c.usage_bucket, c.subscription_key],
                ),
                // The next bucket by equality first: the page that crosses into it was the
                // slowest of all on SQLite with the open range alone.
                (" AND usage_bucket = ?", vec![next_bucket(c.usage_bucket)]),
                (" AND usage_bucket > ?", vec![next_bucket(c.usage_bucket)]),
            ],
        };
        let backend = self.db.db_backend();
        let wanted = request.limit + 1;
        let mut raw = Vec::with_capacity(wanted);
        for (condition, values) in after {
            if raw.len() == wanted {
                break;
            }
            // The page's rows with their instance data, in one query.
            let mut sql = Sql::new(
                backend,
                &format!(
                    "SELECT p.usage_bucket, p.subscription_key, p.meter_key, p.instance_key, p.units, p.fraction, \
                     i.resource_uri, i.location, i.tags, i.additional_info FROM (\
                     SELECT usage_bucket, subscription_key, meter_key, instance_key, \
                     CAST(SUM(qty_units) AS BIGINT) AS units, CAST(SUM(qty_frac) AS BIGINT) AS fraction \
                     FROM {table} WHERE "
                ),
            );
            // Usage never follows its report, and never precedes it by more than the largest
            // lateness folded so far: this bounds the scan to the window's own neighbourhood.
            sql.push("usage_bucket >= ")
                .bind(request.reported_start - lateness)
                .push(" AND usage_bucket < ")
                .bind(request.reported_end)
                .push(" AND reported_bucket >= ")
                .bind(request.reported_start)
                .push(" AND reported_bucket < ")
                .bind(request.reported_end);
            if let Some(keys) = &subscription_keys {
                if keys.len() == 1 {
                    sql.push(" AND subscription_key = ").bind(keys[0]);
                } else {
                    sql.push(" AND subscription_key IN ")
                        .bind_tuple(keys.iter().map(|k| Value::Int(Some(*k))));
                }
            }
            let mut parts = condition.split('?');
            sql.push(parts.next().unwrap_or_default());
            for (value, text) in values.into_iter().zip(parts) {
                sql.bind(value).push(text);
            }
            sql.push(
                " GROUP BY usage_bucket, subscription_key, meter_key, instance_key \
                 ORDER BY usage_bucket, subscription_key, meter_key, instance_key LIMIT ",
            )
            .bind((wanted - raw.len()) as i64)
            .push(
                ") p JOIN usage_instance i ON i.key = p.instance_key \
                 ORDER BY p.usage_bucket, p.subscription_key, p.meter_key, p.instance_key",
            );
            for row in self.db.reader().query_all_raw(sql.build()).await? {
                let key = RowKey {
                    usage_bucket: row.try_get_by_index(0)?,
                    subscription_key: row.try_get_by_index::<i32>(1)? as i64,
                    meter_key: row.try_get_by_index::<i32>(2)? as i64,
                    instance_key: row.try_get_by_index(3)?,
                };
                let units: i64 = row.try_get_by_index(4)?;
                let fraction: i64 = row.try_get_by_index(5)?;
                let tags: String = row.try_get_by_index(8)?;
                let info: String = row.try_get_by_index(9)?;
                let instance = InstanceData {
                    resource_uri: row.try_get_by_index(6)?,
                    location: row.try_get_by_index(7)?,
                    tags: from_json(&tags)?,
                    additional_info: from_json(&info)?,
                };
                raw.push((
                    key,
                    Quantity::from_parts(units as u128, fraction as u128),
                    instance,
                ));
            }
        }
        let more = raw.len() > request.limit;
        raw.truncate(request.limit);

        let subscription_ids = self
            .subscription_ids(raw.iter().map(|(k, _, _)| k.subscription_key as i32))
            .await?;
        let mut rows = Vec::with_capacity(raw.len());
        for (key, quantity, instance) in raw {
            let meter_id = self
                .read_dictionary()
                .meter_id(key.meter_key as i32)
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("meter key {} is unknown", key.meter_key))
                })?;
            rows.push(AggregateRow {
                key,
                subscription_id: subscription_ids[&(key.subscription_key as i32)],
                meter_id,
                usage_start: seconds(key.usage_bucket),
                usage_end: seconds(key.usage_bucket + step),
                quantity,
                instance,
            });
        }
        Ok(Page { rows, more })
    }

    /// Keys of the given subscriptions; ones never seen have no usage and no key.
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
            let mut select = Sql::new(
                self.db.db_backend(),
                "SELECT key, subscription_id FROM usage_subscription WHERE subscription_id IN ",
            );
            select.bind_tuple(
                missing
                    .iter()
                    .map(|id| Value::from(id.hyphenated().to_string())),
            );
            let mut dictionary_updates = Vec::new();
            for row in self.db.reader().query_all_raw(select.build()).await? {
                let key: i32 = row.try_get_by_index(0)?;
                let id: String = row.try_get_by_index(1)?;
                if let Ok(id) = Uuid::parse_str(&id) {
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
        keys: impl Iterator<Item = i32>,
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
            let mut select = Sql::new(
                self.db.db_backend(),
                "SELECT key, subscription_id FROM usage_subscription WHERE key IN ",
            );
            select.bind_tuple(missing.iter().map(|k| Value::Int(Some(*k))));
            for row in self.db.reader().query_all_raw(select.build()).await? {
                let key: i32 = row.try_get_by_index(0)?;
                let id: String = row.try_get_by_index(1)?;
                let id = Uuid::parse_str(&id)
                    .map_err(|_| StoreError::Corrupt(format!("subscription id {id:?}")))?;
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

fn seconds(unix: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(unix, 0).single().unwrap_or_default()
}

fn from_json(text: &str) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("stored map is not JSON: {e}")))
}
