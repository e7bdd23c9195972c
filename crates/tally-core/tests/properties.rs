//! Property tests of the domain's arithmetic: quantities add exactly and print back to what they
//! parse from; bucketing holds for every time chrono can represent; checking a window never
//! panics, whatever times it is given, and refuses those Tally cannot keep naming the field.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use tally_core::time::is_kept;
use tally_core::{Granularity, Quantity, RawTimestamp, ReportedWindow, WindowFields};

const SCALE: u128 = 10_000_000_000;

fn granularity() -> impl Strategy<Value = Granularity> {
    prop_oneof![Just(Granularity::Hourly), Just(Granularity::Daily)]
}

/// Any time chrono can represent, down to the nanosecond.
fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
    let (min, max) = (
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    (min..=max, 0u32..1_000_000_000).prop_map(|(seconds, nanos)| {
        DateTime::from_timestamp(seconds, nanos).unwrap_or(DateTime::<Utc>::MIN_UTC)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn quantities_print_back_to_what_they_parse_from(
        units in 0u128..1_000_000_000_000_000_000,
        fraction in 0u128..SCALE,
    ) {
        let quantity = Quantity::from_parts(units, fraction);
        let printed = quantity.to_string();
        prop_assert_eq!(Quantity::parse_record(&printed), Ok(quantity));
        prop_assert_eq!(quantity.steps(), units * SCALE + fraction);
    }

    #[test]
    fn sums_are_exact(
        parts in proptest::collection::vec((0u128..1_000_000_000_000_000_000, 0u128..SCALE), 0..50),
    ) {
        let quantities: Vec<Quantity> =
            parts.iter().map(|&(u, f)| Quantity::from_parts(u, f)).collect();
        let sum: Quantity = quantities.iter().copied().sum();
        let steps: u128 = parts.iter().map(|&(u, f)| u * SCALE + f).sum();
        prop_assert_eq!(sum.steps(), steps);
        prop_assert_eq!(Quantity::parse(&sum.to_string()), Ok(sum));
    }

    #[test]
    fn parsing_any_text_never_panics(text in "\\PC{0,40}") {
        let _ = Quantity::parse(&text);
        let _ = Quantity::parse_record(&text);
    }

    #[test]
    fn a_bucket_holds_its_time_for_every_representable_time(
        time in any_time(),
        granularity in granularity(),
    ) {
        let start = granularity.bucket_start(time);
        prop_assert!(start <= time);
        prop_assert!(granularity.is_aligned(start));
        prop_assert!((time - start).num_seconds() < granularity.seconds());
        prop_assert_eq!(start.timestamp(), granularity.bucket_of(time.timestamp()));
    }

    #[test]
    fn checking_any_window_never_panics(
        start in any_time(),
        end in any_time(),
        now in any_time(),
        granularity in granularity(),
        allow_incomplete in any::<bool>(),
    ) {
        let checked = ReportedWindow::validate(
            Some(start),
            Some(end),
            granularity,
            allow_incomplete,
            now,
            WindowFields::GRPC,
        );
        match checked {
            Ok(window) => prop_assert!(is_kept(window.start) && is_kept(window.end)),
            Err(rejection) if !is_kept(start) => {
                prop_assert!(rejection.message.starts_with("reported_start_time"));
            }
            Err(rejection) if !is_kept(end) => {
                prop_assert!(rejection.message.starts_with("reported_end_time"));
            }
            Err(_) => {}
        }
    }

    #[test]
    fn any_wire_timestamp_converts_without_panicking(seconds in any::<i64>(), nanos in any::<i32>()) {
        let _ = RawTimestamp { seconds, nanos }.to_utc();
    }
}
