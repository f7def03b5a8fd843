//! Sound handles: what a sound set holds a file for, by group (NGCP's catalog). Their ids
//! are their places in this list, from 1, as `/api/soundhandles/` serves them.

/// The handles, by group: what a media server plays each for.
pub const HANDLES: &[(&str, &[&str])] = &[
    ("music_on_hold", &["music_on_hold"]),
    (
        "early_rejects",
        &[
            "block_in",
            "block_out",
            "block_ncos",
            "locked_in",
            "locked_out",
            "max_calls_in",
            "max_calls_out",
            "callee_offline",
            "callee_busy",
            "callee_unknown",
            "callee_tmp_unavailable",
            "cf_loop",
            "unauth_caller_ip",
            "emergency_unsupported",
        ],
    ),
    (
        "custom_announcements",
        &[
            "custom_announcement_0",
            "custom_announcement_1",
            "custom_announcement_2",
            "custom_announcement_3",
            "custom_announcement_4",
            "custom_announcement_5",
            "custom_announcement_6",
            "custom_announcement_7",
            "custom_announcement_8",
            "custom_announcement_9",
        ],
    ),
    (
        "pbx",
        &[
            "office_hours",
            "queue_greeting",
            "queue_full",
            "queue_prefix",
            "queue_suffix",
            "queue_waiting_music",
            "aa_0",
            "aa_1",
            "aa_2",
            "aa_3",
            "aa_4",
            "aa_5",
            "aa_6",
            "aa_7",
            "aa_8",
            "aa_9",
        ],
    ),
    (
        "conference",
        &[
            "conference_greeting",
            "conference_pin",
            "conference_pin_wrong",
            "conference_joined",
            "conference_first",
            "conference_waiting_music",
        ],
    ),
];

/// The handle with this id, and its group.
pub fn handle(id: i64) -> Option<(&'static str, &'static str)> {
    let n = usize::try_from(id).ok()?.checked_sub(1)?;
    HANDLES
        .iter()
        .flat_map(|(g, hs)| hs.iter().map(move |h| (*h, *g)))
        .nth(n)
}
