//! Parties and roles as FATE names them (fate-spec §2.1, §3.3).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A party's role in a job. `Local` is the role FATE gives to upload jobs (party `0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Guest,
    Host,
    Arbiter,
    Local,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Guest, Role::Host, Role::Arbiter, Role::Local];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::Host => "host",
            Role::Arbiter => "arbiter",
            Role::Local => "local",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when a role name is not one of FATE's roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}` (expected guest, host, arbiter or local)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "guest" => Ok(Role::Guest),
            "host" => Ok(Role::Host),
            "arbiter" => Ok(Role::Arbiter),
            "local" => Ok(Role::Local),
            _ => Err(UnknownRole(s.to_string())),
        }
    }
}

/// A party id. FATE 2.x carries party ids as strings ("9999"); 1.x configs use integers, which
/// deserialize into the same type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PartyId(pub String);

impl PartyId {
    pub fn new(id: impl Into<String>) -> Self {
        PartyId(id.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for PartyId {
    fn from(s: &str) -> Self {
        PartyId(s.to_string())
    }
}

impl From<u64> for PartyId {
    fn from(n: u64) -> Self {
        PartyId(n.to_string())
    }
}

impl<'de> Deserialize<'de> for PartyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Binary formats (postcard on the wire) are not self-describing: there a party id is
        // always the string it was serialized as.
        if !d.is_human_readable() {
            return String::deserialize(d).map(PartyId);
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(u64),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::S(s) => PartyId(s),
            Raw::N(n) => PartyId(n.to_string()),
        })
    }
}

/// One party of a job: a role played by a party id. A party id may play several roles
/// (host 10000 and arbiter 10000 in FATE's examples).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Party {
    pub role: Role,
    pub party_id: PartyId,
}

impl Party {
    pub fn new(role: Role, party_id: impl Into<PartyId>) -> Self {
        Party {
            role,
            party_id: party_id.into(),
        }
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.role, self.party_id)
    }
}

impl From<String> for PartyId {
    fn from(s: String) -> Self {
        PartyId(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn party_ids_accept_numbers_and_strings() {
        let a: PartyId = serde_json::from_str("9999").unwrap();
        let b: PartyId = serde_json::from_str("\"9999\"").unwrap();
        assert_eq!(a, b);
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"9999\"");
    }

    #[test]
    fn parties_round_trip_through_a_binary_format() {
        let p = Party::new(Role::Host, "10000");
        let bytes = postcard::to_stdvec(&p).unwrap();
        assert_eq!(postcard::from_bytes::<Party>(&bytes).unwrap(), p);
    }

    #[test]
    fn roles_parse_case_insensitively_and_reject_unknown() {
        assert_eq!("Guest".parse::<Role>().unwrap(), Role::Guest);
        let err = "captain".parse::<Role>().unwrap_err();
        assert!(err.to_string().contains("captain"));
    }
}
