//! Subscriber features: call forwards and preferences. Rules and normalization live here,
//! apart from HTTP and SQL; `attributes` turns them into the usr_preferences rows a SIP
//! server receives.

pub mod callforwards;
pub mod prefs;
pub mod sounds;

/// Every usr_preferences attribute features write: a SIP server's rows with these names are
/// voxprov's; any other attribute belongs to someone else and is never touched.
pub fn managed_attributes() -> Vec<String> {
    let mut v = callforwards::managed_attributes();
    v.extend(prefs::managed_attributes().map(str::to_string));
    v
}
