//! What an inline button means: its callback data, written when the button is drawn and read
//! back when it is pressed. Both directions live here so they cannot drift apart; the data
//! comes back from Telegram unchecked (any client can send any callback data, up to 64 bytes),
//! so reading it refuses everything this module did not write.

/// A button's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    /// `/subscriptions`: remove subscription `remove` (if any), then show page `page`.
    Subscriptions { remove: Option<i64>, page: usize },
    /// `/search`: page `page` of remembered search `search`.
    Search { search: u64, page: u32 },
    /// `/search`: send the stored photo of post `post` in channel `channel`.
    Photo { channel: i64, post: i64 },
}

impl Press {
    /// The callback data this button carries (at most 64 bytes: `u:` and `p:` with two i64s is
    /// the longest, 43).
    pub fn data(&self) -> String {
        match self {
            Press::Subscriptions {
                remove: Some(id),
                page,
            } => format!("u:{id}:{page}"),
            Press::Subscriptions { remove: None, page } => format!("ul:{page}"),
            Press::Search { search, page } => format!("s:{search}:{page}"),
            Press::Photo { channel, post } => format!("p:{channel}:{post}"),
        }
    }

    /// Reads callback data; `None` for data this bot never wrote (a forged or foreign press).
    /// `u:<id>` without a page is what earlier versions wrote: page 0.
    pub fn parse(data: &str) -> Option<Press> {
        let parts: Vec<&str> = data.split(':').collect();
        Some(match parts.as_slice() {
            ["u", id] => Press::Subscriptions {
                remove: Some(id.parse().ok()?),
                page: 0,
            },
            ["u", id, page] => Press::Subscriptions {
                remove: Some(id.parse().ok()?),
                page: page.parse().ok()?,
            },
            ["ul", page] => Press::Subscriptions {
                remove: None,
                page: page.parse().ok()?,
            },
            ["s", search, page] => Press::Search {
                search: search.parse().ok()?,
                page: page.parse().ok()?,
            },
            ["p", channel, post] => Press::Photo {
                channel: channel.parse().ok()?,
                post: post.parse().ok()?,
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_press_reads_back_as_written_and_foreign_data_is_refused() {
        for p in [
            Press::Subscriptions {
                remove: Some(-7),
                page: 3,
            },
            Press::Subscriptions {
                remove: None,
                page: 0,
            },
            Press::Search {
                search: u64::MAX,
                page: u32::MAX,
            },
            Press::Photo {
                channel: i64::MIN,
                post: i64::MAX,
            },
        ] {
            assert!(p.data().len() <= 64, "{}", p.data());
            assert_eq!(Press::parse(&p.data()), Some(p));
        }
        assert_eq!(
            Press::parse("u:12"),
            Some(Press::Subscriptions {
                remove: Some(12),
                page: 0
            })
        );
        for foreign in [
            "", "u:", "u:x", "u:1:x", "ul:-1", "s:1", "s:1:2:3", "p:1", "x:1:2",
        ] {
            assert_eq!(Press::parse(foreign), None, "{foreign}");
        }
    }
}
