//! FATE's `route_table.json` parsing (`RouteTable::from_json`) and lookups. Parsing reads no
//! files (PEM paths are only resolved), so any input is safe to feed. Any panic is a bug.
#![no_main]

use fate_federation_grpc::RouteTable;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(table) = RouteTable::from_json(text, None) else {
        return;
    };
    let _ = table.self_party();
    for party in ["9999", "10000", "default", "", "fateflow"] {
        let _ = table.is_self(party);
        for role in ["default", "fateflow", "host", ""] {
            if let Ok(hop) = table.lookup(party, role) {
                let _ = hop.describe();
                let _ = hop.route.address();
            }
        }
    }
});
