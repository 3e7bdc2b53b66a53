//! The payload decoder over any body and every event key of both products:
//! it never panics, and what it reads back serializes (it is stored).
#![no_main]

use bitgate_core::{
    integrations::Provider,
    webhooks::events::{normalize, CLOUD_KEYS, DATACENTER_KEYS},
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else { return };
    let keys = DATACENTER_KEYS.iter().map(|k| (Provider::DataCenter, *k));
    let keys = keys.chain(CLOUD_KEYS.iter().map(|k| (Provider::Cloud, *k)));
    for (provider, key) in keys.chain([(Provider::DataCenter, "repo:push"), (Provider::Cloud, "unknown:key")]) {
        if let Ok(Some(event)) = normalize(provider, key, &value) {
            assert!(!event.repository.id.is_empty(), "{key}: a repository without its id");
            serde_json::to_value(&event).expect("an event serializes");
        }
    }
});
