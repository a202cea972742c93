//! Where a post's file is: read fresh from the post (`channels.getMessages`: its id, access
//! hash, file reference and DC), and the login copied to that DC before its first file.

use std::collections::{HashMap, HashSet};

use grammers_client::tl;

use crate::guard::GuardError;
use crate::parser::client::Connected;
use crate::store::{MediaJob, Store};

/// What `upload.getFile` needs for one file.
#[derive(Debug, Clone)]
pub struct Location {
    pub input: tl::enums::InputFileLocation,
    pub dc: i32,
    /// Telegram's file id (a post whose file was replaced by an edit has another).
    pub file_id: i64,
    /// Bytes, if Telegram says.
    pub size: Option<i64>,
}

pub enum Error {
    Fatal(GuardError),
    /// The channel cannot be read (private, banned, gone).
    Refused(String),
    Later(String),
}

/// The largest downloadable size of a photo or a thumbnail list: its type and bytes.
fn largest(sizes: &[tl::enums::PhotoSize]) -> Option<(String, i64)> {
    sizes
        .iter()
        .filter_map(|s| match s {
            tl::enums::PhotoSize::Size(x) => Some((x.r#type.clone(), x.size as i64)),
            tl::enums::PhotoSize::Progressive(x) => {
                Some((x.r#type.clone(), x.sizes.iter().copied().max()? as i64))
            }
            _ => None,
        })
        .max_by_key(|(_, n)| *n)
}

/// The location of `job`'s file in `message`, or why there is none.
pub fn of_message(message: &tl::enums::Message, job: &MediaJob) -> Result<Location, String> {
    let tl::enums::Message::Message(m) = message else {
        return Err("the post is gone".into());
    };
    match &m.media {
        Some(tl::enums::MessageMedia::Photo(p)) => {
            let Some(tl::enums::Photo::Photo(ph)) = &p.photo else {
                return Err("the photo is gone".into());
            };
            let (size_type, size) = largest(&ph.sizes).ok_or("the photo has no size to fetch")?;
            let (size_type, size) = if job.thumb {
                ph.sizes
                    .iter()
                    .find_map(|s| match s {
                        tl::enums::PhotoSize::Size(x) if x.r#type == "m" => {
                            Some(("m".to_string(), x.size as i64))
                        }
                        _ => None,
                    })
                    .unwrap_or((size_type, size))
            } else {
                (size_type, size)
            };
            Ok(Location {
                input: tl::types::InputPhotoFileLocation {
                    id: ph.id,
                    access_hash: ph.access_hash,
                    file_reference: ph.file_reference.clone(),
                    thumb_size: size_type,
                }
                .into(),
                dc: ph.dc_id,
                file_id: ph.id,
                size: Some(size),
            })
        }
        Some(tl::enums::MessageMedia::Document(d)) => {
            let Some(tl::enums::Document::Document(doc)) = &d.document else {
                return Err("the file is gone".into());
            };
            let (thumb_size, size) = if job.thumb {
                largest(doc.thumbs.as_deref().unwrap_or_default()).ok_or("it has no thumbnail")?
            } else {
                (String::new(), doc.size)
            };
            Ok(Location {
                input: tl::types::InputDocumentFileLocation {
                    id: doc.id,
                    access_hash: doc.access_hash,
                    file_reference: doc.file_reference.clone(),
                    thumb_size,
                }
                .into(),
                dc: doc.dc_id,
                file_id: doc.id,
                size: Some(size),
            })
        }
        _ => Err("the post no longer has a file".into()),
    }
}

/// Reads the posts of `jobs` (all of channel `channel`) again: each one's file location, or
/// why it has none.
pub async fn read(
    conn: &Connected,
    store: &Store,
    channel: i64,
    jobs: &[MediaJob],
) -> Result<HashMap<i64, Result<Location, String>>, Error> {
    let record = store
        .find_channel(&channel.to_string())
        .await
        .map_err(|e| Error::Later(e.to_string()))?
        .ok_or_else(|| Error::Refused("the channel is no longer followed".into()))?;
    let mut out = HashMap::new();
    for chunk in jobs.chunks(100) {
        let req = tl::functions::channels::GetMessages {
            channel: tl::types::InputChannel {
                channel_id: channel,
                access_hash: record.access_hash.unwrap_or(0),
            }
            .into(),
            id: chunk
                .iter()
                .map(|j| {
                    tl::types::InputMessageId {
                        id: i32::try_from(j.message_id).unwrap_or(0),
                    }
                    .into()
                })
                .collect(),
        };
        let answer = match conn.invoke(&req).await {
            Ok(a) => a,
            Err(e @ (GuardError::Revoked(_) | GuardError::Frozen(_))) => {
                return Err(Error::Fatal(e));
            }
            Err(GuardError::Rpc {
                code: 400, name, ..
            }) => return Err(Error::Refused(name)),
            Err(e) => return Err(Error::Later(e.to_string())),
        };
        let messages = match answer {
            tl::enums::messages::Messages::Messages(m) => m.messages,
            tl::enums::messages::Messages::Slice(m) => m.messages,
            tl::enums::messages::Messages::ChannelMessages(m) => m.messages,
            tl::enums::messages::Messages::NotModified(_) => Vec::new(),
        };
        for j in chunk {
            let found = messages
                .iter()
                .find(|m| message_id(m) == Some(j.message_id));
            let loc = match found {
                Some(m) => of_message(m, j),
                None => Err("the post is gone".into()),
            };
            out.insert(j.message_id, loc);
        }
    }
    Ok(out)
}

fn message_id(m: &tl::enums::Message) -> Option<i64> {
    match m {
        tl::enums::Message::Message(x) => Some(x.id.into()),
        tl::enums::Message::Service(x) => Some(x.id.into()),
        tl::enums::Message::Empty(x) => Some(x.id.into()),
    }
}

/// The DCs the login was copied to in this process.
#[derive(Default)]
pub struct Auths {
    copied: tokio::sync::Mutex<HashSet<i32>>,
}

impl Auths {
    /// Copies the login to `dc` unless it is home or was copied already (`again`: it was, but
    /// the DC no longer knows it).
    pub async fn ensure(&self, conn: &Connected, dc: i32, again: bool) -> Result<(), GuardError> {
        if dc == conn.dc() {
            return Ok(());
        }
        let mut copied = self.copied.lock().await;
        if again {
            copied.remove(&dc);
        }
        if copied.contains(&dc) {
            return Ok(());
        }
        let tl::enums::auth::ExportedAuthorization::Authorization(exported) = conn
            .invoke(&tl::functions::auth::ExportAuthorization { dc_id: dc })
            .await?;
        conn.guard
            .invoke(
                &conn.client,
                dc,
                &tl::functions::auth::ImportAuthorization {
                    id: exported.id,
                    bytes: exported.bytes,
                },
            )
            .await?;
        tracing::info!(dc, "the login was copied to DC {dc} for its files");
        copied.insert(dc);
        Ok(())
    }
}
