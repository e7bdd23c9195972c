//! The rating rules, pure: which price sheet is in force at a usage hour, and what a row costs,
//! tiers included. No I/O; the service feeds rows in the contract's order.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tally_core::quantity::Quantity;

use crate::money::{Money, Price};

/// A graduated tier: from this cumulative quantity on, this unit price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tier {
    pub from: Quantity,
    pub unit_price: Price,
}

/// How one meter is priced on a sheet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MeterRate {
    Flat(Price),
    /// Ascending, the first from 0.
    Tiered(Vec<Tier>),
}

/// One price sheet version, validated.
#[derive(Clone, Debug)]
pub struct Sheet {
    pub price_sheet_id: String,
    pub tenant_id: String,
    pub effective_from: DateTime<Utc>,
    pub rates: HashMap<String, MeterRate>,
}

/// Every sheet version, indexed for "which sheet is in force at this hour for this tenant".
#[derive(Clone, Debug, Default)]
pub struct SheetBook {
    /// Per tenant id ("" = the default sheets): sheets by effective_from, ties in creation
    /// order (the later created is the correction and wins).
    by_tenant: HashMap<String, Vec<Arc<Sheet>>>,
}

impl SheetBook {
    /// `sheets` in creation order.
    pub fn new(sheets: impl IntoIterator<Item = Sheet>) -> SheetBook {
        let mut by_tenant: HashMap<String, Vec<Arc<Sheet>>> = HashMap::new();
        for sheet in sheets {
            by_tenant
                .entry(sheet.tenant_id.clone())
                .or_default()
                .push(Arc::new(sheet));
        }
        for sheets in by_tenant.values_mut() {
            // Stable: equal effective_from keep creation order.
            sheets.sort_by_key(|s| s.effective_from);
        }
        SheetBook { by_tenant }
    }

    /// The sheet in force at `hour` for `tenant_id`: the latest effective_from <= hour among the
    /// tenant's own sheets, else among the default sheets.
    pub fn in_force(&self, tenant_id: &str, hour: DateTime<Utc>) -> Option<&Arc<Sheet>> {
        let latest = |tenant: &str| {
            let sheets = self.by_tenant.get(tenant)?;
            let after = sheets.partition_point(|s| s.effective_from <= hour);
            after.checked_sub(1).map(|i| &sheets[i])
        };
        (!tenant_id.is_empty())
            .then(|| latest(tenant_id))
            .flatten()
            .or_else(|| latest(""))
    }
}

/// One priced part of a row: all of it at a flat price, or the part inside one tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RatedPart {
    pub quantity: Quantity,
    pub unit_price: Price,
    pub cost: Money,
}

fn steps(q: u128) -> Quantity {
    Quantity::from_parts(0, q)
}

/// Rates `quantity` at `rate`, with `consumed` the cumulative quantity of its (subscription,
/// meter) in the period before it; advances `consumed`. No rate: no parts (cost 0).
pub fn rate(
    rate: Option<&MeterRate>,
    consumed: &mut Quantity,
    quantity: Quantity,
) -> Vec<RatedPart> {
    let start = consumed.steps();
    let end = start + quantity.steps();
    *consumed = steps(end);
    match rate {
        None => Vec::new(),
        Some(MeterRate::Flat(price)) => vec![RatedPart {
            quantity,
            unit_price: price.clone(),
            cost: Money::cost(quantity, price),
        }],
        Some(MeterRate::Tiered(tiers)) => {
            let mut parts = Vec::new();
            for (i, tier) in tiers.iter().enumerate() {
                let tier_start = tier.from.steps();
                let tier_end = tiers.get(i + 1).map_or(u128::MAX, |t| t.from.steps());
                let lo = start.max(tier_start);
                let hi = end.min(tier_end);
                if lo < hi {
                    let part = steps(hi - lo);
                    parts.push(RatedPart {
                        quantity: part,
                        unit_price: tier.unit_price.clone(),
                        cost: Money::cost(part, &tier.unit_price),
                    });
                }
            }
            parts
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap()
    }

    fn p(text: &str) -> Price {
        Price::parse(text, false).unwrap()
    }

    fn tiers() -> MeterRate {
        MeterRate::Tiered(vec![
            Tier {
                from: q("0"),
                unit_price: p("1"),
            },
            Tier {
                from: q("10"),
                unit_price: p("0.5"),
            },
            Tier {
                from: q("20"),
                unit_price: p("0.25"),
            },
        ])
    }

    #[test]
    fn a_row_crossing_two_tier_boundaries_is_split_at_each() {
        let mut consumed = q("8");
        let parts = rate(Some(&tiers()), &mut consumed, q("14.5"));
        let view: Vec<_> = parts
            .iter()
            .map(|p| {
                (
                    p.quantity.to_string(),
                    p.unit_price.to_string(),
                    p.cost.to_string(),
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                ("2".into(), "1".into(), "2".into()),
                ("10".into(), "0.5".into(), "5".into()),
                ("2.5".into(), "0.25".into(), "0.625".into()),
            ]
        );
        assert_eq!(consumed, q("22.5"));
    }

    #[test]
    fn an_unpriced_meter_costs_nothing_but_still_counts() {
        let mut consumed = q("1");
        assert!(rate(None, &mut consumed, q("2")).is_empty());
        assert_eq!(consumed, q("3"));
    }

    #[test]
    fn the_tenant_sheet_wins_and_the_latest_version_in_force_applies() {
        let at = |h: i64| DateTime::<Utc>::from_timestamp(h * 3600, 0).unwrap();
        let sheet = |id: &str, tenant: &str, from: i64| Sheet {
            price_sheet_id: id.into(),
            tenant_id: tenant.into(),
            effective_from: at(from),
            rates: HashMap::new(),
        };
        let book = SheetBook::new([
            sheet("d1", "", 0),
            sheet("d2", "", 10),
            sheet("t1", "t", 5),
            sheet("d3", "", 10),
        ]);
        let id = |tenant: &str, h: i64| {
            book.in_force(tenant, at(h))
                .map(|s| s.price_sheet_id.clone())
        };
        assert_eq!(id("t", 4), Some("d1".into()));
        assert_eq!(id("t", 5), Some("t1".into()));
        assert_eq!(id("t", 50), Some("t1".into()));
        assert_eq!(id("u", 9), Some("d1".into()));
        assert_eq!(id("u", 10), Some("d3".into()), "the later correction wins");
        assert_eq!(id("", 10), Some("d3".into()));
        assert_eq!(
            SheetBook::new([])
                .in_force("t", at(1))
                .map(|s| s.price_sheet_id.clone()),
            None
        );
    }
}
