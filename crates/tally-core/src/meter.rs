//! The meter catalog: every meter Azure Stack Hub documents (docs/azure-stack.md §4), plus custom meters.
//!
//! Which meters are chargeable (reported upstream to commerce) follows docs/azure-stack.md §3.2 and §4:
//! commerce charges workload VMs by vCore-hours only, storage services and App Service; Azure Stack
//! Hub captures more meters locally than it bills. So:
//! - Compute: the two vCore-hour meters are chargeable; "VM size hours" (not adjusted for cores)
//!   is not, because VMs are charged on vCore-hours only.
//! - Storage (blob, table, queue capacity, transactions and transfer): chargeable.
//! - Managed disks: the actual-size meters (GB×month, like the other storage capacity meters) are
//!   chargeable; the per-tier disk counts (S4…P50) describe the same disks and stay local, so the
//!   same disk is never charged twice. Deprecated disk meters are superseded and not chargeable.
//! - App Service: only "App Service" (vCore hours) is billed by Microsoft; the other App Service
//!   meters exist for operators' own chargeback.
//! - Network IP addresses, SQL/MySQL, Event Hubs and Key Vault are not in the documented charged
//!   set (RP usage "is reported but not charged"), so they are local-only.
//!
//! Meter IDs are compared case-insensitively and held as canonical lower-case GUIDs.

use std::collections::HashMap;

use uuid::Uuid;

use crate::guid::parse_guid;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meter {
    pub id: Uuid,
    pub name: String,
    pub unit: String,
    pub resource_provider: String,
    pub chargeable: bool,
    pub deprecated: bool,
}

struct BuiltIn {
    id: &'static str,
    name: &'static str,
    unit: &'static str,
    provider: &'static str,
    chargeable: bool,
    deprecated: bool,
}

const fn m(
    id: &'static str,
    name: &'static str,
    unit: &'static str,
    provider: &'static str,
    chargeable: bool,
    deprecated: bool,
) -> BuiltIn {
    BuiltIn {
        id,
        name,
        unit,
        provider,
        chargeable,
        deprecated,
    }
}

const CHARGED: bool = true;
const LOCAL: bool = false;
const CURRENT: bool = false;
const DEPRECATED: bool = true;

#[rustfmt::skip]
const BUILT_IN: &[BuiltIn] = &[
    // Network
    m("F271A8A388C44D93956A063E1D2FA80B", "Static IP Address Usage", "IP addresses", "Network", LOCAL, CURRENT),
    m("9E2739BA86744796B465F64674B822BA", "Dynamic IP Address Usage", "IP addresses", "Network", LOCAL, CURRENT),
    m("f114cb19-ea64-40b5-bcd7-aee474b62853", "Public IP Address Usage", "IP addresses", "Network", LOCAL, DEPRECATED),
    // Storage
    m("B4438D5D-453B-4EE1-B42A-DC72E377F1E4", "TableCapacity", "GB×hours", "Storage", CHARGED, CURRENT),
    m("B5C15376-6C94-4FDD-B655-1A69D138ACA3", "PageBlobCapacity", "GB×hours", "Storage", CHARGED, CURRENT),
    m("B03C6AE7-B080-4BFA-84A3-22C800F315C6", "QueueCapacity", "GB×hours", "Storage", CHARGED, CURRENT),
    m("09F8879E-87E9-4305-A572-4B7BE209F857", "BlockBlobCapacity", "GB×hours", "Storage", CHARGED, CURRENT),
    m("B9FF3CD0-28AA-4762-84BB-FF8FBAEA6A90", "TableTransactions", "requests in 10,000s", "Storage", CHARGED, CURRENT),
    m("50A1AEAF-8ECA-48A0-8973-A5B3077FEE0D", "TableDataTransIn", "ingress GB", "Storage", CHARGED, CURRENT),
    m("1B8C1DEC-EE42-414B-AA36-6229CF199370", "TableDataTransOut", "egress GB", "Storage", CHARGED, CURRENT),
    m("43DAF82B-4618-444A-B994-40C23F7CD438", "BlobTransactions", "requests in 10,000s", "Storage", CHARGED, CURRENT),
    m("9764F92C-E44A-498E-8DC1-AAD66587A810", "BlobDataTransIn", "ingress GB", "Storage", CHARGED, CURRENT),
    m("3023FEF4-ECA5-4D7B-87B3-CFBC061931E8", "BlobDataTransOut", "egress GB", "Storage", CHARGED, CURRENT),
    m("EB43DD12-1AA6-4C4B-872C-FAF15A6785EA", "QueueTransactions", "requests in 10,000s", "Storage", CHARGED, CURRENT),
    m("E518E809-E369-4A45-9274-2017B29FFF25", "QueueDataTransIn", "ingress GB", "Storage", CHARGED, CURRENT),
    m("DD0A10BA-A5D6-4CB6-88C0-7D585CEF9FC2", "QueueDataTransOut", "egress GB", "Storage", CHARGED, CURRENT),
    // Compute
    m("FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5", "Base VM Size Hours", "virtual core hours", "Compute", CHARGED, CURRENT),
    m("9CD92D4C-BAFD-4492-B278-BEDC2DE8232A", "Windows VM Size Hours", "virtual core hours", "Compute", CHARGED, CURRENT),
    m("6DAB500F-A4FD-49C4-956D-229BB9C8C793", "VM size hours", "VM hours", "Compute", LOCAL, CURRENT),
    // Managed disks, current (per month)
    m("380874f9-300c-48e0-95a0-d2d9a21ade8f", "S4", "disks×month", "Compute", LOCAL, CURRENT),
    m("1b77d90f-427b-4435-b4f1-d78adec53222", "S6", "disks×month", "Compute", LOCAL, CURRENT),
    m("d5f7731b-f639-404a-89d0-e46186e22c8d", "S10", "disks×month", "Compute", LOCAL, CURRENT),
    m("ff85ef31-da5b-4eac-95dd-a69d6f97b18a", "S15", "disks×month", "Compute", LOCAL, CURRENT),
    m("88ea9228-457a-4091-adc9-ad5194f30b6e", "S20", "disks×month", "Compute", LOCAL, CURRENT),
    m("5b1db88a-8596-4002-8052-347947c26940", "S30", "disks×month", "Compute", LOCAL, CURRENT),
    m("14496322-39cb-4d33-b67d-39b0c2de0c8e", "S40", "disks×month", "Compute", LOCAL, CURRENT),
    m("8c003d25-afb4-4f21-b1fa-86a5b0f001c7", "S50", "disks×month", "Compute", LOCAL, CURRENT),
    m("7660b45b-b29d-49cb-b816-59f30fbab011", "P4", "disks×month", "Compute", LOCAL, CURRENT),
    m("817007fd-a077-477f-bc01-b876f27205fd", "P6", "disks×month", "Compute", LOCAL, CURRENT),
    m("e554b6bc-96cd-4938-a5b5-0da990278519", "P10", "disks×month", "Compute", LOCAL, CURRENT),
    m("cdc0f53a-62a9-4472-a06c-e99a23b02907", "P15", "disks×month", "Compute", LOCAL, CURRENT),
    m("b9cb2d1a-84c2-4275-aa8b-70d2145d59aa", "P20", "disks×month", "Compute", LOCAL, CURRENT),
    m("06bde724-9f94-43c0-84c3-d0fc54538369", "P30", "disks×month", "Compute", LOCAL, CURRENT),
    m("eecb2657-e7e6-47f9-9b00-7f58fa8839cb", "P40", "disks×month", "Compute", LOCAL, CURRENT),
    m("43626c21-849b-40fe-8c01-e19666059c38", "P50", "disks×month", "Compute", LOCAL, CURRENT),
    m("7ba084ec-ef9c-4d64-a179-7732c6cb5e28", "ActualStandardDiskSize", "GB×month", "Compute", CHARGED, CURRENT),
    m("daef389a-06e5-4684-a7f7-8813d9f792d5", "ActualPremiumDiskSize", "GB×month", "Compute", CHARGED, CURRENT),
    m("108fa95b-be0d-4cd9-96e8-5b0d59505df1", "ActualStandardSnapshotSize", "GB×month", "Compute", CHARGED, CURRENT),
    m("578ae51d-4ef9-42f9-85ae-42b52d3d83ac", "ActualPremiumSnapshotSize", "GB×month", "Compute", CHARGED, CURRENT),
    // Managed disks, deprecated
    m("5d76e09f-4567-452a-94cc-7d1f097761f0", "S4", "disks×hours", "Compute", LOCAL, DEPRECATED),
    m("dc9fc6a9-0782-432a-b8dc-978130457494", "S6", "disks×hours", "Compute", LOCAL, DEPRECATED),
    m("e5572fce-9f58-49d7-840c-b168c0f01fff", "S10", "disks×hours", "Compute", LOCAL, DEPRECATED),
    m("9a8caedd-1195-4cd5-80b4-a4c22f9302b8", "S15", "disks×hours", "Compute", LOCAL, DEPRECATED),
    m("5938f8da-0ecd-4c48-8d5a-c7c6c23546be", "S20", "disks×hours", "Compute", LOCAL, DEPRECATED),
    m("7705a158-bd8b-4b2b-b4c2-0782343b81e6", "S30", "disks×hours", "Compute", LOCAL, DEPRECATED),
    m("d9aac1eb-a5d1-42f2-b617-9e3ea94fed88", "S40", "disks×hours", "Compute", LOCAL, DEPRECATED),
    m("a54899dd-458e-4a40-9abd-f57cafd936a7", "S50", "disks×hours", "Compute", LOCAL, DEPRECATED),
    m("5c105f5f-cbdf-435c-b49b-3c7174856dcc", "P4", "disks×hours", "Compute", LOCAL, DEPRECATED),
    m("518b412b-1927-4f25-985f-4aea24e55c4f", "P6", "disks×hours", "Compute", LOCAL, DEPRECATED),
    m("5cfb1fed-0902-49e3-8217-9add946fd624", "P10", "disks×hours", "Compute", LOCAL, DEPRECATED),
    m("8de91c94-f740-4d9a-b665-bd5974fa08d4", "P15", "disks×hours", "Compute", LOCAL, DEPRECATED),
    m("c7e7839c-293b-4761-ae4c-848eda91130b", "P20", "disks×hours", "Compute", LOCAL, DEPRECATED),
    m("9f502103-adf4-4488-b494-456c95d23a9f", "P30", "disks×hours", "Compute", LOCAL, DEPRECATED),
    m("043757fc-049f-4e8b-8379-45bb203c36b1", "P40", "disks×hours", "Compute", LOCAL, DEPRECATED),
    m("c0342c6f-810b-4942-85d3-6eaa561b6570", "P50", "disks×hours", "Compute", LOCAL, DEPRECATED),
    m("8a409390-1913-40ae-917b-08d0f16f3c38", "ActualStandardDiskSize", "byte×hours", "Compute", LOCAL, DEPRECATED),
    m("1273b16f-8458-4c34-8ce2-a515de551ef6", "ActualPremiumDiskSize", "byte×hours", "Compute", LOCAL, DEPRECATED),
    m("89009682-df7f-44fe-aeb1-63fba3ddbf4c", "ActualStandardSnapshotSize", "byte×hours", "Compute", LOCAL, DEPRECATED),
    m("95b0c03f-8a82-4524-8961-ccfbf575f536", "ActualPremiumSnapshotSize", "byte×hours", "Compute", LOCAL, DEPRECATED),
    m("75d4b707-1027-4403-9986-6ec7c05579c8", "ActualStandardSnapshotSize", "GB×month", "Compute", LOCAL, DEPRECATED),
    m("5ca1cbb9-6f14-4e76-8be8-1ca91547965e", "ActualPremiumSnapshotSize", "GB×month", "Compute", LOCAL, DEPRECATED),
    // SQL and MySQL resource providers
    m("CBCFEF9A-B91F-4597-A4D3-01FE334BED82", "DatabaseSizeHourSqlMeter", "MB×hours", "SQL", LOCAL, CURRENT),
    m("E6D8CFCD-7734-495E-B1CC-5AB0B9C24BD3", "DatabaseSizeHourMySqlMeter", "MB×hours", "MySQL", LOCAL, CURRENT),
    // Event Hubs
    m("CB6A35C5-FADE-406C-B14D-6DDB7C4CA3D5", "1 Core", "core×hours", "Event Hubs", LOCAL, CURRENT),
    // Key Vault
    m("EBF13B9F-B3EA-46FE-BF54-396E93D48AB4", "Key Vault transactions", "requests in 10,000s", "Key Vault", LOCAL, CURRENT),
    m("2C354225-B2FE-42E5-AD89-14F0EA302C87", "Advanced keys transactions", "10K transactions", "Key Vault", LOCAL, CURRENT),
    // App Service
    m("190C935E-9ADA-48FF-9AB8-56EA1CF9ADAA", "App Service", "virtual core hours", "App Service", CHARGED, CURRENT),
    m("67CC4AFC-0691-48E1-A4B8-D744D1FEDBDE", "Functions Requests", "10 requests", "App Service", LOCAL, CURRENT),
    m("D1D04836-075C-4F27-BF65-0A1130EC60ED", "Functions - Compute", "GB-s", "App Service", LOCAL, CURRENT),
    m("957E9F36-2C14-45A1-B6A1-1723EF71A01D", "Shared App Service Hours", "1 hour", "App Service", LOCAL, CURRENT),
    m("539CDEC7-B4F5-49F6-AAC4-1F15CFF0EDA9", "Free App Service Hours", "1 hour", "App Service", LOCAL, CURRENT),
    m("88039D51-A206-3A89-E9DE-C5117E2D10A6", "Small Standard App Service Hours", "1 hour", "App Service", LOCAL, CURRENT),
    m("83A2A13E-4788-78DD-5D55-2831B68ED825", "Medium Standard App Service Hours", "1 hour", "App Service", LOCAL, CURRENT),
    m("1083B9DB-E9BB-24BE-A5E9-D6FDD0DDEFE6", "Large Standard App Service Hours", "1 hour", "App Service", LOCAL, CURRENT),
    m("db658d61-ef2d-4888-9843-72f5c774fd3c", "Small Basic App Service Hours", "1 hour", "App Service", LOCAL, CURRENT),
    m("27b01104-e0df-4f30-a171-f1b00ecb76b3", "Medium Basic App Service Hours", "1 hour", "App Service", LOCAL, CURRENT),
    m("50db6a92-5dff-4c9b-8238-8ea5fb1be107", "Large Basic App Service Hours", "1 hour", "App Service", LOCAL, CURRENT),
    m("26bd6580-c3bd-4e7e-8092-58b28eb1bb94", "Small Premium App Service Hours", "1 hour", "App Service", LOCAL, CURRENT),
    m("a1cba406-e83e-45c3-bd36-485191c215d9", "Medium Premium App Service Hours", "1 hour", "App Service", LOCAL, CURRENT),
    m("a2104a9d-5a78-4f8f-a2df-034bd43d602d", "Large Premium App Service Hours", "1 hour", "App Service", LOCAL, CURRENT),
    m("a91eed6c-dbbc-4532-859c-86de776433a4", "Extra Large Premium App Service Hours", "1 hour", "App Service", LOCAL, CURRENT),
    m("264ACB47-AD38-47F8-ADD3-47F01DC4F473", "SNI SSL", "per SNI SSL binding", "App Service", LOCAL, CURRENT),
    m("60B42D72-DC1C-472C-9895-6C516277EDB4", "IP SSL", "per IP-based SSL binding", "App Service", LOCAL, CURRENT),
    m("73215A6C-FA54-4284-B9C1-7E8EC871CC5B", "Web Process", "per active site per hour", "App Service", LOCAL, CURRENT),
    m("5887D39B-0253-4E12-83C7-03E1A93DFFD9", "External Egress Bandwidth", "GB", "App Service", LOCAL, CURRENT),
];

/// Well-known meter IDs used by the demo, tests and benchmarks.
pub mod well_known {
    pub const BASE_VM_SIZE_HOURS: &str = "fab6eb84-500b-4a09-a8ca-7358f8bbaea5";
    pub const WINDOWS_VM_SIZE_HOURS: &str = "9cd92d4c-bafd-4492-b278-bedc2de8232a";
    pub const VM_SIZE_HOURS: &str = "6dab500f-a4fd-49c4-956d-229bb9c8c793";
    pub const BLOCK_BLOB_CAPACITY: &str = "09f8879e-87e9-4305-a572-4b7be209f857";
    pub const BLOB_TRANSACTIONS: &str = "43daf82b-4618-444a-b994-40c23f7cd438";
    pub const ACTUAL_STANDARD_DISK_SIZE: &str = "7ba084ec-ef9c-4d64-a179-7732c6cb5e28";
    pub const ACTUAL_PREMIUM_DISK_SIZE: &str = "daef389a-06e5-4684-a7f7-8813d9f792d5";
    pub const STATIC_IP_ADDRESS_USAGE: &str = "f271a8a3-88c4-4d93-956a-063e1d2fa80b";
    pub const DYNAMIC_IP_ADDRESS_USAGE: &str = "9e2739ba-8674-4796-b465-f64674b822ba";
    pub const APP_SERVICE: &str = "190c935e-9ada-48ff-9ab8-56ea1cf9adaa";
}

/// Namespace of the deterministic IDs of custom meters (UUIDv5 over provider and name), so the
/// same custom tier gets the same meter ID on every installation, as App Service's custom worker
/// tiers do.
const CUSTOM_METER_NAMESPACE: Uuid = Uuid::from_u128(0x5a1c_7e11_7a11_4c3a_9e7e_0c0f_fee0_ab1e);

/// The deterministic ID of a custom meter.
pub fn custom_meter_id(resource_provider: &str, name: &str) -> Uuid {
    let key = format!(
        "{}/{}",
        resource_provider.trim().to_lowercase(),
        name.trim().to_lowercase()
    );
    Uuid::new_v5(&CUSTOM_METER_NAMESPACE, key.as_bytes())
}

/// Every built-in meter, current and deprecated. (Every built-in id is a GUID: a unit test checks
/// none is left out.)
pub fn built_in_meters() -> Vec<Meter> {
    BUILT_IN
        .iter()
        .filter_map(|b| {
            Some(Meter {
                id: parse_guid(b.id)?,
                name: b.name.to_string(),
                unit: b.unit.to_string(),
                resource_provider: b.provider.to_string(),
                chargeable: b.chargeable,
                deprecated: b.deprecated,
            })
        })
        .collect()
}

/// Meters by ID: the built-in catalog plus any custom meters.
#[derive(Clone, Debug, Default)]
pub struct MeterCatalog {
    meters: HashMap<Uuid, Meter>,
}

impl MeterCatalog {
    pub fn with_built_ins() -> Self {
        let mut catalog = Self::default();
        for meter in built_in_meters() {
            catalog.insert(meter);
        }
        catalog
    }

    pub fn insert(&mut self, meter: Meter) {
        self.meters.insert(meter.id, meter);
    }

    pub fn get(&self, id: &Uuid) -> Option<&Meter> {
        self.meters.get(id)
    }

    pub fn contains(&self, id: &Uuid) -> bool {
        self.meters.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.meters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.meters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_holds_every_meter_once() {
        let meters = built_in_meters();
        let catalog = MeterCatalog::with_built_ins();
        assert_eq!(catalog.len(), meters.len(), "a meter id appears twice");
        assert_eq!(meters.len(), 85);
    }

    #[test]
    fn well_known_ids_are_in_the_catalog() {
        let catalog = MeterCatalog::with_built_ins();
        for id in [
            well_known::BASE_VM_SIZE_HOURS,
            well_known::WINDOWS_VM_SIZE_HOURS,
            well_known::VM_SIZE_HOURS,
            well_known::BLOCK_BLOB_CAPACITY,
            well_known::BLOB_TRANSACTIONS,
            well_known::ACTUAL_STANDARD_DISK_SIZE,
            well_known::ACTUAL_PREMIUM_DISK_SIZE,
            well_known::STATIC_IP_ADDRESS_USAGE,
            well_known::DYNAMIC_IP_ADDRESS_USAGE,
            well_known::APP_SERVICE,
        ] {
            assert!(catalog.contains(&parse_guid(id).unwrap()), "{id}");
        }
    }

    #[test]
    fn chargeability_follows_the_reference_facts() {
        let catalog = MeterCatalog::with_built_ins();
        let chargeable = |id: &str| catalog.get(&parse_guid(id).unwrap()).unwrap().chargeable;
        assert!(chargeable(well_known::BASE_VM_SIZE_HOURS));
        assert!(
            !chargeable(well_known::VM_SIZE_HOURS),
            "VMs are charged on vCore-hours only"
        );
        assert!(chargeable(well_known::BLOCK_BLOB_CAPACITY));
        assert!(chargeable(well_known::APP_SERVICE));
        assert!(
            !chargeable("957E9F36-2C14-45A1-B6A1-1723EF71A01D"),
            "shared App Service hours are for chargeback"
        );
        assert!(!chargeable(well_known::STATIC_IP_ADDRESS_USAGE));
        let deprecated_charged: Vec<_> = built_in_meters()
            .into_iter()
            .filter(|m| m.deprecated && m.chargeable)
            .collect();
        assert!(deprecated_charged.is_empty());
    }

    #[test]
    fn custom_meter_ids_are_deterministic_and_distinct() {
        let a = custom_meter_id("App Service", "Custom Small");
        assert_eq!(a, custom_meter_id(" app service ", "CUSTOM SMALL"));
        assert_ne!(a, custom_meter_id("App Service", "Custom Large"));
    }

    #[test]
    fn every_built_in_meter_id_is_a_guid() {
        assert_eq!(built_in_meters().len(), BUILT_IN.len());
    }
}
