//! A blocking client for S3-compatible object stores: the requests the S3 backend
//! makes, each signed, sent, timed out and mapped to an [`S3Error`] in one place.
//!
//! Why these crates: `rusty-s3` signs requests (AWS Signature V4, as presigned URLs)
//! and parses ListObjectsV2 and multipart replies without doing any I/O itself, and
//! `ureq` is a small blocking HTTP client. Together they fit a server of blocking
//! worker threads, where an async client (the AWS SDK, `rust-s3`'s default) would
//! bring a runtime and its threads for requests that a worker waits for anyway.
//!
//! Every request has bounds: connecting and resolving within [`S3Settings::timeout`],
//! and each read and write on the connection within it too (an idle bound, so a large
//! object streams for as long as bytes keep moving, and a store that stops answering
//! frees the worker). Redirects are not followed: a signed request is never sent to
//! another host. Connections are kept from one request to the next: every reply is
//! read to its end (ureq keeps only such a connection), and each read is acknowledged
//! at once (see `connect.rs` for the 40 ms a delayed acknowledgement cost).
//!
//! Writes the store refused as busy or broken (a `5xx`: a single Garage node answers
//! `503` when its database is locked) are sent again, a few times with growing waits
//! ([`backoff`]), where sending a request twice does what sending it once does; their
//! bodies are in memory (an upload buffers each part), so a retry sends the same bytes.
//! Reads are not retried, but for a listing's later pages
//! ([`S3Client::next_list_page`]): a GET or HEAD that fails is the session's error reply.
//!
//! Keys are whole object keys here (the backend adds its prefix); [`check_key`] refuses
//! the few strings that URL joining would rewrite (`.`, `..`, empty segments), so a
//! key always names the object it says.

use std::borrow::Cow;
use std::io::{self, Read};
use std::time::{Duration, Instant, SystemTime};

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use ureq::http::Response;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, RustlsConnector};
use ureq::Body;

use super::connect::PromptAckConnector;

/// How long a signed URL stays valid; it is checked when the request starts.
const SIGNATURE_LIFE: Duration = Duration::from_secs(15 * 60);

/// The most of an error or listing reply read into memory.
const MAX_REPLY: u64 = 16 << 20;

/// S3's largest single copy (CopyObject); larger objects are copied in parts.
pub const MAX_SINGLE_COPY: u64 = 5 << 30;

/// The part size of a copy in parts.
pub const COPY_PART: u64 = 1 << 30;

/// How many times a write the store failed is sent again, at most.
const RETRIES: u32 = 3;

/// The wait before the first retry; each later one is four times the one before, up
/// to [`MAX_BACKOFF`] (50 ms, 200 ms, 800 ms), less a random part of up to half.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// The longest wait before a retry.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Where the object store is and how to sign for it.
#[derive(Clone)]
pub struct S3Settings {
    /// The endpoint, e.g. `http://127.0.0.1:3900` or `https://s3.eu-west-1.amazonaws.com`.
    pub endpoint: String,
    /// The region the signatures name (Garage's default is `garage`).
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// A session token, for temporary credentials.
    pub session_token: Option<String>,
    /// Bound on connecting and on each read and write of a request.
    pub timeout: Duration,
}

impl std::fmt::Debug for S3Settings {
    // The secret never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key_id", &self.access_key_id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What can go wrong talking to the object store.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The key (or the bucket) does not exist (HTTP 404).
    #[error("no such object")]
    NotFound,
    /// The store refused the credentials or the access (HTTP 401, 403).
    #[error("access denied by the object store ({code}: {message})")]
    Denied {
        /// S3's error code, e.g. `AccessDenied`, `InvalidAccessKeyId`.
        code: String,
        /// S3's message.
        message: String,
    },
    /// The object changed while it was read (HTTP 412 on `If-Match`).
    #[error("the object changed while it was read")]
    Changed,
    /// The store refused the request as invalid (another 4xx).
    #[error("the object store refused the request ({status} {code}: {message})")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// S3's error code.
        code: String,
        /// S3's message.
        message: String,
    },
    /// The store failed or is overloaded (5xx, or an error inside a 200 reply).
    #[error("the object store failed ({status} {code}: {message})")]
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// S3's error code.
        code: String,
        /// S3's message.
        message: String,
    },
    /// The store could not be reached, or stopped answering within the timeout.
    #[error("cannot reach the object store: {0}")]
    Transport(String),
    /// The store's reply could not be understood.
    #[error("the object store's reply makes no sense: {0}")]
    BadReply(String),
    /// The settings are unusable (a bad endpoint URL, bucket name).
    #[error("unusable S3 settings: {0}")]
    Settings(String),
    /// The key would not name itself in a URL (`.`, `..` or empty segments).
    #[error("object key not allowed")]
    BadKey,
}

impl From<ureq::Error> for S3Error {
    fn from(e: ureq::Error) -> S3Error {
        match e {
            ureq::Error::Timeout(what) => S3Error::Transport(format!("timed out ({what})")),
            other => S3Error::Transport(other.to_string()),
        }
    }
}

/// An object's facts, from HeadObject or a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The whole key.
    pub key: String,
    /// The size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: SystemTime,
    /// The entity tag, quotes included, as the store gives it.
    pub etag: String,
}

/// One page of ListObjectsV2.
#[derive(Debug, Default)]
pub struct ListPage {
    /// Objects directly under the prefix.
    pub objects: Vec<ObjectInfo>,
    /// Common prefixes (with their trailing delimiter): the "directories".
    pub prefixes: Vec<String>,
    /// Where the next page starts, when there is one.
    pub next: Option<String>,
}

/// An object being read: a bounded, streamed GET body, and the object's facts from
/// the GET's own reply.
pub struct ObjectReader {
    body: ureq::BodyReader<'static>,
    /// The object read (its whole size, whatever the offset).
    info: ObjectInfo,
    /// Bytes the reply said it holds and not read yet.
    remaining: u64,
    /// The length of what this read returns (the whole object, or from the offset).
    len: u64,
}

impl ObjectReader {
    /// The number of bytes this reader returns in all.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it returns no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The object this reads, as the GET's reply told it: its whole size (from
    /// `Content-Range` for a read from an offset), entity tag and time. It is the
    /// version the body is of.
    pub fn info(&self) -> &ObjectInfo {
        &self.info
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.body.read(&mut buf[..want])?;
        if n == 0 {
            // The store promised more: a cut-short download is an error, not an end.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the object store ended the object early",
            ));
        }
        self.remaining -= n as u64;
        if self.remaining == 0 {
            // The last byte: ureq gives the connection back to the agent's pool only
            // once its body reader has said "end", and a caller that stops at the
            // length it was told (the transfer does) never asks again. Without this,
            // every GET's connection was closed, and the next request opened another
            // (a TLS handshake too, on https).
            let mut past = [0u8; 1];
            if self.body.read(&mut past)? != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the object store sent more than the object's length",
                ));
            }
        }
        Ok(n)
    }
}

/// A multipart upload in progress in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpload {
    /// The key it will create.
    pub key: String,
    /// The store's id for it.
    pub upload_id: String,
}

/// The blocking object-store client of one bucket.
pub struct S3Client {
    bucket: Bucket,
    credentials: Credentials,
    agent: ureq::Agent,
    /// [`S3Settings::timeout`]: also the bound on a write's retries in all.
    timeout: Duration,
}

impl std::fmt::Debug for S3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Client")
            .field("endpoint", &self.bucket.base_url().as_str())
            .finish_non_exhaustive()
    }
}

/// Characters percent-encoded in `x-amz-copy-source`: all but unreserved and `/`.
const COPY_SOURCE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'!')
    .add(b'"')
    .add(b'#')
    .add(b'$')
    .add(b'%')
    .add(b'&')
    .add(b'\'')
    .add(b'(')
    .add(b')')
    .add(b'*')
    .add(b'+')
    .add(b',')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Refuses keys that URL joining would rewrite or that S3 cannot hold.
///
/// # Errors
/// [`S3Error::BadKey`] for an empty key, a leading `/`, an empty, `.` or `..` segment
/// or a control character.
pub fn check_key(key: &str) -> Result<(), S3Error> {
    let body = key.strip_suffix('/').unwrap_or(key);
    if body.is_empty()
        || body
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        || key.chars().any(char::is_control)
        || key.len() > 1024
    {
        return Err(S3Error::BadKey);
    }
    Ok(())
}

impl S3Client {
    /// A client for `settings`' bucket, addressed path-style (`endpoint/bucket/key`),
    /// which self-hosted stores need and AWS still serves.
    ///
    /// # Errors
    /// [`S3Error::Settings`] for an endpoint that is not an http(s) URL or a bad bucket name.
    pub fn new(settings: &S3Settings) -> Result<S3Client, S3Error> {
        let endpoint: url::Url = settings
            .endpoint
            .parse()
            .map_err(|e| S3Error::Settings(format!("endpoint {:?}: {e}", settings.endpoint)))?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err(S3Error::Settings(format!(
                "endpoint {:?} is not an http:// or https:// URL",
                settings.endpoint
            )));
        }
        if settings.bucket.is_empty() || settings.bucket.contains(['/', '?', '#']) {
            return Err(S3Error::Settings(format!(
                "bucket name {:?} not allowed",
                settings.bucket
            )));
        }
        let bucket = Bucket::new(
            endpoint,
            UrlStyle::Path,
            settings.bucket.clone(),
            settings.region.clone(),
        )
        .map_err(|e| S3Error::Settings(e.to_string()))?;
        let credentials = match &settings.session_token {
            Some(token) => Credentials::new_with_token(
                &settings.access_key_id,
                &settings.secret_access_key,
                token,
            ),
            None => Credentials::new(&settings.access_key_id, &settings.secret_access_key),
        };
        let t = Some(settings.timeout);
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_resolve(t)
            .timeout_connect(t)
            .timeout_per_read(t)
            .timeout_per_write(t)
            // Workers of one server share the pool of kept connections.
            .max_idle_connections_per_host(64)
            .user_agent(concat!("simple-ftp/", env!("CARGO_PKG_VERSION")))
            .build();
        // ureq's own chain (a CONNECT proxy when the environment names one, TCP,
        // rustls), with our TCP connections that acknowledge at once (see `connect`).
        let connector =
            ().chain(ConnectProxyConnector::default())
                .chain(PromptAckConnector)
                .chain(RustlsConnector::default());
        Ok(S3Client {
            bucket,
            credentials,
            agent: ureq::Agent::with_parts(config, connector, DefaultResolver::default()),
            timeout: settings.timeout,
        })
    }

    fn creds(&self) -> Option<&Credentials> {
        Some(&self.credentials)
    }

    /// Checks that the bucket exists and the credentials may use it (HeadBucket).
    ///
    /// # Errors
    /// [`S3Error::NotFound`] for a missing bucket, [`S3Error::Denied`] for refused
    /// credentials, [`S3Error::Transport`] for an unreachable store.
    pub fn check_bucket(&self) -> Result<(), S3Error> {
        // HeadBucket has no body to say why; a one-key listing does, so its error
        // names the cause (InvalidAccessKeyId, NoSuchBucket, ...).
        let mut list = self.bucket.list_objects_v2(self.creds());
        list.with_max_keys(1);
        let url = list.sign(SIGNATURE_LIFE);
        let resp = self.agent.get(url.as_str()).call()?;
        expect_ok(resp).and_then(finish)
    }

    /// Writes a whole object in one PUT (tried again when the store fails it, see
    /// [`S3Client::with_retries`]).
    ///
    /// # Errors
    /// Any [`S3Error`] the store or the connection gives.
    pub fn put(&self, key: &str, body: &[u8]) -> Result<(), S3Error> {
        check_key(key)?;
        let url = self
            .bucket
            .put_object(self.creds(), key)
            .sign(SIGNATURE_LIFE);
        self.with_retries("PutObject", key, Repeat::Idempotent, || {
            let resp = self.agent.put(url.as_str()).send(body)?;
            expect_ok(resp).and_then(finish)
        })
    }

    /// Starts a multipart upload and returns its id.
    ///
    /// # Errors
    /// Any [`S3Error`] the store or the connection gives.
    pub fn create_multipart(&self, key: &str) -> Result<String, S3Error> {
        check_key(key)?;
        let url = self
            .bucket
            .create_multipart_upload(self.creds(), key)
            .sign(SIGNATURE_LIFE);
        let text =
            self.with_retries("CreateMultipartUpload", key, Repeat::OnFailureReply, || {
                let resp = self.agent.post(url.as_str()).send_empty()?;
                read_text(expect_ok(resp)?)
            })?;
        let parsed = rusty_s3::actions::CreateMultipartUpload::parse_response(&text)
            .map_err(|e| S3Error::BadReply(format!("CreateMultipartUpload: {e}")))?;
        Ok(parsed.upload_id().to_owned())
    }

    /// Uploads part `number` (from 1) of an upload and returns its entity tag.
    ///
    /// # Errors
    /// Any [`S3Error`] the store or the connection gives.
    pub fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        body: &[u8],
    ) -> Result<String, S3Error> {
        check_key(key)?;
        let url = self
            .bucket
            .upload_part(self.creds(), key, number, upload_id)
            .sign(SIGNATURE_LIFE);
        // A part sent again replaces the one of its number.
        self.with_retries("UploadPart", key, Repeat::Idempotent, || {
            let resp = self.agent.put(url.as_str()).send(body)?;
            let resp = expect_ok(resp)?;
            let etag = etag_of(&resp)?;
            finish(resp)?;
            Ok(etag)
        })
    }

    /// Finishes an upload from its parts' entity tags, in order: the object appears.
    ///
    /// # Errors
    /// Any [`S3Error`] the store or the connection gives, including an error that S3
    /// may send inside a `200` reply.
    pub fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), S3Error> {
        check_key(key)?;
        let action = self.bucket.complete_multipart_upload(
            self.creds(),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(SIGNATURE_LIFE);
        let body = action.body();
        // Only after the store said it failed (S3 tells clients to retry a `5xx` or an
        // error inside the `200`): a completion whose reply was lost may have happened,
        // and then a second one answers NoSuchUpload.
        self.with_retries(
            "CompleteMultipartUpload",
            key,
            Repeat::OnFailureReply,
            || {
                let resp = self.agent.post(url.as_str()).send(body.as_bytes())?;
                let text = read_text(expect_ok(resp)?)?;
                error_inside_ok(&text)
            },
        )
    }

    /// Abandons an upload: its parts are dropped and no object appears.
    ///
    /// # Errors
    /// Any [`S3Error`] the store or the connection gives.
    pub fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        check_key(key)?;
        let url = self
            .bucket
            .abort_multipart_upload(self.creds(), key, upload_id)
            .sign(SIGNATURE_LIFE);
        let mut sent = false;
        self.with_retries("AbortMultipartUpload", key, Repeat::Idempotent, || {
            let again = std::mem::replace(&mut sent, true);
            let resp = self.agent.delete(url.as_str()).call()?;
            match expect_ok(resp) {
                Ok(resp) => finish(resp),
                // An earlier try whose reply was lost aborted it.
                Err(S3Error::NotFound) if again => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    /// The multipart uploads in progress under `prefix` (ListMultipartUploads, every page).
    ///
    /// # Errors
    /// Any [`S3Error`] the store or the connection gives.
    pub fn list_multipart(&self, prefix: &str) -> Result<Vec<PendingUpload>, S3Error> {
        let mut found = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut query: Vec<(&str, &str)> = vec![("uploads", ""), ("prefix", prefix)];
            if let Some((key, id)) = &markers {
                query.push(("key-marker", key));
                query.push(("upload-id-marker", id));
            }
            // The signature wants the query in order, as `sign` merges it with its own.
            query.sort_unstable();
            let url = self.sign_bucket(rusty_s3::Method::Get, &query, &[]);
            let resp = self.agent.get(url.as_str()).call()?;
            let text = read_text(expect_ok(resp)?)?;
            for upload in elements(&text, "Upload") {
                let key = first_value(upload, "Key")
                    .ok_or_else(|| S3Error::BadReply("an Upload without a Key".into()))?;
                let upload_id = first_value(upload, "UploadId")
                    .ok_or_else(|| S3Error::BadReply("an Upload without an UploadId".into()))?;
                found.push(PendingUpload { key, upload_id });
            }
            let truncated = first_value(&text, "IsTruncated").as_deref() == Some("true");
            let next = (
                first_value(&text, "NextKeyMarker"),
                first_value(&text, "NextUploadIdMarker"),
            );
            match next {
                (Some(key), Some(id)) if truncated && !key.is_empty() => {
                    if markers.as_ref() == Some(&(key.clone(), id.clone())) {
                        return Err(S3Error::BadReply("a listing that does not move on".into()));
                    }
                    markers = Some((key, id));
                }
                _ => return Ok(found),
            }
        }
    }

    /// Reads an object from `offset` on, streamed; the reply's headers give the
    /// object's facts ([`ObjectReader::info`]), so no HeadObject is needed. `if_match`
    /// (an entity tag) makes the store refuse with [`S3Error::Changed`] when the
    /// object is another by now.
    ///
    /// # Errors
    /// [`S3Error::NotFound`] for a missing key, [`S3Error::Refused`] (416) for an
    /// offset past the end, any other [`S3Error`] the store or the connection gives.
    pub fn get(
        &self,
        key: &str,
        offset: u64,
        if_match: Option<&str>,
    ) -> Result<ObjectReader, S3Error> {
        check_key(key)?;
        let url = self
            .bucket
            .get_object(self.creds(), key)
            .sign(SIGNATURE_LIFE);
        let mut req = self.agent.get(url.as_str());
        if offset > 0 {
            req = req.header("range", format!("bytes={offset}-"));
        }
        if let Some(tag) = if_match {
            req = req.header("if-match", tag);
        }
        let resp = expect_ok(req.call()?)?;
        let partial = resp.status().as_u16() == 206;
        if offset > 0 && !partial {
            return Err(S3Error::BadReply("a ranged GET answered in full".into()));
        }
        let len = header(&resp, "content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| S3Error::BadReply("a GET without Content-Length".into()))?;
        let size = if partial {
            let range = header(&resp, "content-range").unwrap_or_default();
            whole_size(&range, offset, len).ok_or_else(|| {
                S3Error::BadReply(format!(
                    "a GET from byte {offset} of {len} bytes with Content-Range {range:?}"
                ))
            })?
        } else {
            len
        };
        let info = object_info(key, &resp, size);
        Ok(ObjectReader {
            body: resp.into_body().into_reader(),
            info,
            remaining: len,
            len,
        })
    }

    /// An object's facts (HeadObject); `None` when there is no such key.
    ///
    /// # Errors
    /// Any [`S3Error`] but [`S3Error::NotFound`] that the store or the connection gives.
    pub fn head(&self, key: &str) -> Result<Option<ObjectInfo>, S3Error> {
        check_key(key)?;
        let url = self
            .bucket
            .head_object(self.creds(), key)
            .sign(SIGNATURE_LIFE);
        let resp = match expect_ok(self.agent.head(url.as_str()).call()?) {
            Ok(resp) => resp,
            Err(S3Error::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = header(&resp, "content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| S3Error::BadReply("a HEAD without Content-Length".into()))?;
        Ok(Some(object_info(key, &resp, size)))
    }

    /// A later page of a listing, from `token`: [`S3Client::list_page`], sent again
    /// when the store fails it as it sends a write again ([`S3Client::with_retries`]).
    /// Unlike other reads: a later page is asked for after the listing's `150`, where a
    /// failure can only cut the listing short.
    ///
    /// # Errors
    /// As [`S3Client::list_page`], once the retries are spent.
    pub fn next_list_page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        token: &str,
    ) -> Result<ListPage, S3Error> {
        self.with_retries("ListObjectsV2", prefix, Repeat::Idempotent, || {
            self.list_page(prefix, delimiter, Some(token), None)
        })
    }

    /// One page of ListObjectsV2 under `prefix`, grouped at `delimiter` when given,
    /// from `token` (the previous page's [`ListPage::next`]).
    ///
    /// # Errors
    /// Any [`S3Error`] the store or the connection gives.
    pub fn list_page(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        token: Option<&str>,
        max_keys: Option<usize>,
    ) -> Result<ListPage, S3Error> {
        let mut list: ListObjectsV2<'_> = self.bucket.list_objects_v2(self.creds());
        if !prefix.is_empty() {
            list.with_prefix(prefix);
        }
        if let Some(d) = delimiter {
            list.with_delimiter(d);
        }
        if let Some(t) = token {
            list.with_continuation_token(t);
        }
        if let Some(n) = max_keys {
            list.with_max_keys(n);
        }
        let url = list.sign(SIGNATURE_LIFE);
        let resp = self.agent.get(url.as_str()).call()?;
        let text = read_text(expect_ok(resp)?)?;
        let parsed = ListObjectsV2::parse_response(&text)
            .map_err(|e| S3Error::BadReply(format!("ListObjectsV2: {e}")))?;
        let objects = parsed
            .contents
            .into_iter()
            .map(|c| ObjectInfo {
                modified: parse_iso_time(&c.last_modified).unwrap_or(SystemTime::UNIX_EPOCH),
                key: c.key,
                size: c.size,
                etag: c.etag,
            })
            .collect();
        let next = parsed.next_continuation_token.filter(|t| !t.is_empty());
        if next.is_some() && next.as_deref() == token {
            return Err(S3Error::BadReply("a listing that does not move on".into()));
        }
        Ok(ListPage {
            objects,
            prefixes: parsed
                .common_prefixes
                .into_iter()
                .map(|p| p.prefix)
                .collect(),
            next,
        })
    }

    /// Copies an object of `size` bytes to another key: one CopyObject up to S3's
    /// 5 GiB bound, in parts of [`COPY_PART`] beyond it.
    ///
    /// # Errors
    /// Any [`S3Error`] the store or the connection gives.
    pub fn copy(&self, from: &str, to: &str, size: u64) -> Result<(), S3Error> {
        if size <= MAX_SINGLE_COPY {
            self.copy_whole(from, to)
        } else {
            self.copy_in_parts(from, to, size, COPY_PART)
        }
    }

    fn copy_source(&self, from: &str) -> String {
        format!(
            "/{}/{}",
            self.bucket.name(),
            utf8_percent_encode(from, COPY_SOURCE)
        )
    }

    fn copy_whole(&self, from: &str, to: &str) -> Result<(), S3Error> {
        check_key(from)?;
        check_key(to)?;
        let source = self.copy_source(from);
        let mut action = self.bucket.put_object(self.creds(), to);
        action
            .headers_mut()
            .insert("x-amz-copy-source", source.clone());
        let url = action.sign(SIGNATURE_LIFE);
        // The source is only read: a second copy writes the same object again.
        self.with_retries("CopyObject", to, Repeat::Idempotent, || {
            let resp = self
                .agent
                .put(url.as_str())
                .header("x-amz-copy-source", &source)
                .send_empty()?;
            let text = read_text(expect_ok(resp)?)?;
            error_inside_ok(&text)
        })
    }

    /// Copies in parts of `part` bytes (UploadPartCopy), for objects past CopyObject's
    /// bound; an aborted copy leaves no upload behind.
    ///
    /// # Errors
    /// Any [`S3Error`] the store or the connection gives.
    pub fn copy_in_parts(&self, from: &str, to: &str, size: u64, part: u64) -> Result<(), S3Error> {
        check_key(from)?;
        let part = part.max(1);
        let upload_id = self.create_multipart(to)?;
        let result = (|| {
            let source = self.copy_source(from);
            let mut etags = Vec::new();
            let mut start = 0u64;
            let mut number: u16 = 1;
            while start < size || (size == 0 && number == 1) {
                let end = (start + part).min(size).saturating_sub(1);
                let range = format!("bytes={start}-{end}");
                let mut action = self
                    .bucket
                    .upload_part(self.creds(), to, number, &upload_id);
                action
                    .headers_mut()
                    .insert("x-amz-copy-source", source.clone());
                action
                    .headers_mut()
                    .insert("x-amz-copy-source-range", range.clone());
                let url = action.sign(SIGNATURE_LIFE);
                let text = self.with_retries("UploadPartCopy", to, Repeat::Idempotent, || {
                    let resp = self
                        .agent
                        .put(url.as_str())
                        .header("x-amz-copy-source", &source)
                        .header("x-amz-copy-source-range", &range)
                        .send_empty()?;
                    let text = read_text(expect_ok(resp)?)?;
                    error_inside_ok(&text)?;
                    Ok(text)
                })?;
                let etag = first_value(&text, "ETag")
                    .ok_or_else(|| S3Error::BadReply("UploadPartCopy without an ETag".into()))?;
                etags.push(etag);
                start = end + 1;
                number = number
                    .checked_add(1)
                    .ok_or_else(|| S3Error::BadReply("too many parts".into()))?;
                if size == 0 {
                    break;
                }
            }
            self.complete_multipart(to, &upload_id, &etags)
        })();
        if result.is_err() {
            if let Err(e) = self.abort_multipart(to, &upload_id) {
                log::warn!("s3: cannot abort the copy to {to:?}: {e}");
            }
        }
        result
    }

    /// Deletes an object; deleting a key that is not there succeeds, as in S3.
    ///
    /// # Errors
    /// Any [`S3Error`] the store or the connection gives.
    pub fn delete(&self, key: &str) -> Result<(), S3Error> {
        check_key(key)?;
        let url = self
            .bucket
            .delete_object(self.creds(), key)
            .sign(SIGNATURE_LIFE);
        self.with_retries("DeleteObject", key, Repeat::Idempotent, || {
            let resp = self.agent.delete(url.as_str()).call()?;
            match expect_ok(resp) {
                Ok(resp) => finish(resp),
                Err(S3Error::NotFound) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    /// Runs `attempt`, a request that `what` names (for the log), and sends it again
    /// when the store failed it in a way [`worth_repeating`] for `repeat`: up to
    /// [`RETRIES`] more times, after the waits [`backoff`] gives, and none that would
    /// start after [`S3Settings::timeout`] from the first attempt's start (each
    /// attempt has its own bounds on connecting, reading and writing). Returns the
    /// last attempt's result.
    fn with_retries<T>(
        &self,
        what: &str,
        key: &str,
        repeat: Repeat,
        mut attempt: impl FnMut() -> Result<T, S3Error>,
    ) -> Result<T, S3Error> {
        let started = Instant::now();
        let mut retries = 0;
        loop {
            match attempt() {
                Err(e) if worth_repeating(&e, repeat) => {
                    let Some(wait) = backoff(retries, started.elapsed(), self.timeout, jitter())
                    else {
                        return Err(e);
                    };
                    retries += 1;
                    log::debug!(
                        "s3: {what} {key:?}: {e}; retry {retries} of {RETRIES} in {} ms",
                        wait.as_millis()
                    );
                    std::thread::sleep(wait);
                }
                result => return result,
            }
        }
    }

    /// Signs a bucket-level request that `rusty-s3` has no action for.
    fn sign_bucket(
        &self,
        method: rusty_s3::Method,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> url::Url {
        rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            method,
            self.bucket.base_url().clone(),
            self.credentials.key(),
            self.credentials.secret(),
            self.credentials.token(),
            self.bucket.region(),
            SIGNATURE_LIFE.as_secs(),
            query.iter().copied(),
            headers.iter().copied(),
        )
    }
}

/// Which failures a request may be sent again after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Sending it twice does what sending it once does (PutObject of a body in
    /// memory, UploadPart, CopyObject, DeleteObject, AbortMultipartUpload): again
    /// after the store's `5xx` and after a lost connection.
    Idempotent,
    /// Only after the store answered that it failed: a request whose connection was
    /// lost may have been done (CreateMultipartUpload would start a second upload;
    /// CompleteMultipartUpload, done, answers NoSuchUpload to a second).
    OnFailureReply,
}

/// Whether a request that failed with `e` is sent again: the store's own failure
/// (`500`, `503` Slow Down, an error inside a `200`), or for an idempotent request a
/// connection that failed (reset, refused). Refusals (`4xx`) are final. A timed-out
/// attempt has used the whole bound on retrying, so [`backoff`] stops there.
fn worth_repeating(e: &S3Error, repeat: Repeat) -> bool {
    match e {
        S3Error::Unavailable { .. } => true,
        S3Error::Transport(_) => repeat == Repeat::Idempotent,
        _ => false,
    }
}

/// The wait before retry number `retry` (from 0) of a request first sent `elapsed`
/// ago, or `None` for no more retries: after [`RETRIES`], or when the next attempt
/// would start past `budget` from the first. Exponential (×4 from [`FIRST_BACKOFF`],
/// at most [`MAX_BACKOFF`]), and `jitter` (from 0 to 1) takes up to half of it off,
/// so that workers the store refused together do not come back together.
fn backoff(retry: u32, elapsed: Duration, budget: Duration, jitter: f64) -> Option<Duration> {
    if retry >= RETRIES {
        return None;
    }
    let full = FIRST_BACKOFF
        .saturating_mul(4u32.saturating_pow(retry))
        .min(MAX_BACKOFF);
    let wait = full.mul_f64(1.0 - 0.5 * jitter.clamp(0.0, 1.0));
    (elapsed.saturating_add(wait) < budget).then_some(wait)
}

/// A number from 0 to 1, different each call (from the random numbers upload names
/// use), random enough to spread waits.
fn jitter() -> f64 {
    // The top 53 bits, as an f64 in [0, 1).
    (crate::path::random() >> 11) as f64 / (1u64 << 53) as f64
}

/// A reply header's text, when it has one that is text.
fn header(resp: &Response<Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// An object's facts from a HEAD's or GET's reply headers, and its whole `size`.
fn object_info(key: &str, resp: &Response<Body>, size: u64) -> ObjectInfo {
    ObjectInfo {
        key: key.to_owned(),
        size,
        modified: header(resp, "last-modified")
            .and_then(|v| parse_http_date(&v))
            .unwrap_or(SystemTime::UNIX_EPOCH),
        etag: header(resp, "etag").unwrap_or_default(),
    }
}

/// The whole object's size from the `Content-Range` of a `206` to `bytes=OFFSET-`
/// carrying `len` bytes: `bytes OFFSET-LAST/SIZE` (RFC 9110, 14.4). `None` when the
/// range is not the one asked for; a size of `*` (unknown) is the offset plus the
/// length, since the range asked runs to the end.
fn whole_size(range: &str, offset: u64, len: u64) -> Option<u64> {
    let (span, size) = range.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    let (first, last): (u64, u64) = (first.parse().ok()?, last.parse().ok()?);
    if first != offset || last.checked_sub(first)?.checked_add(1)? != len {
        return None;
    }
    let end = offset.checked_add(len)?;
    match size {
        "*" => Some(end),
        size => size.parse().ok().filter(|size| *size >= end),
    }
}

/// Passes a 2xx reply on; turns any other into its [`S3Error`].
fn expect_ok(resp: Response<Body>) -> Result<Response<Body>, S3Error> {
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(resp);
    }
    let text = read_text(resp).unwrap_or_default();
    let code = first_value(&text, "Code").unwrap_or_default();
    let message = first_value(&text, "Message").unwrap_or_default();
    Err(error_for(status, code, message))
}

/// The error an HTTP status and S3 error code stand for.
fn error_for(status: u16, code: String, message: String) -> S3Error {
    match status {
        404 => S3Error::NotFound,
        401 | 403 => S3Error::Denied { code, message },
        412 => S3Error::Changed,
        500..=599 => S3Error::Unavailable {
            status,
            code,
            message,
        },
        _ => S3Error::Refused {
            status,
            code,
            message,
        },
    }
}

/// S3 may answer CopyObject and CompleteMultipartUpload `200` and put an error in
/// the body; such a reply is a failure.
fn error_inside_ok(text: &str) -> Result<(), S3Error> {
    if elements(text, "Error").next().is_some() && !text.contains("<CompleteMultipartUploadResult")
    {
        let code = first_value(text, "Code").unwrap_or_default();
        let message = first_value(text, "Message").unwrap_or_default();
        return Err(S3Error::Unavailable {
            status: 200,
            code,
            message,
        });
    }
    Ok(())
}

/// Reads a reply's body, whose content is not wanted, to its end: so the connection
/// goes back to the pool (ureq keeps only a connection whose body was read whole).
fn finish(resp: Response<Body>) -> Result<(), S3Error> {
    let mut body = resp.into_body();
    let mut reader = body.with_config().limit(MAX_REPLY).reader();
    io::copy(&mut reader, &mut io::sink())
        .map(drop)
        .map_err(|e| S3Error::Transport(e.to_string()))
}

fn read_text(resp: Response<Body>) -> Result<String, S3Error> {
    resp.into_body()
        .with_config()
        .limit(MAX_REPLY)
        .read_to_string()
        .map_err(S3Error::from)
}

fn etag_of(resp: &Response<Body>) -> Result<String, S3Error> {
    resp.headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| S3Error::BadReply("a part without an ETag".into()))
}

/// The contents of each `<tag>...</tag>` element in `xml` (not nested in itself).
/// S3's replies are flat and small; this reads the few fields that `rusty-s3` does
/// not parse (error codes, ListMultipartUploads) without a second XML library.
fn elements<'x>(xml: &'x str, tag: &str) -> impl Iterator<Item = &'x str> + 'x {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let inner = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(inner)
    })
}

/// The first `<tag>` element's text, with XML's entities decoded.
fn first_value(xml: &str, tag: &str) -> Option<String> {
    elements(xml, tag).next().map(|v| unescape(v).into_owned())
}

/// Decodes the five named XML entities and numeric character references.
fn unescape(text: &str) -> Cow<'_, str> {
    if !text.contains('&') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// An ISO 8601 time as listings give it (`2026-12-02T04:38:51.000Z`).
fn parse_iso_time(text: &str) -> Option<SystemTime> {
    let ts: jiff::Timestamp = text.parse().ok()?;
    Some(SystemTime::from(ts))
}

/// An HTTP date as `Last-Modified` gives it (`Wed, 02 Dec 2026 04:38:51 GMT`).
fn parse_http_date(text: &str) -> Option<SystemTime> {
    let zoned = jiff::fmt::rfc2822::parse(text).ok()?;
    Some(SystemTime::from(zoned.timestamp()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_url_joining_would_rewrite_are_refused() {
        for bad in [
            "", "/a", "a//b", "a/./b", "a/../b", "..", ".", "a\nb", "//x",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "a/b", "dir/", "p/x y:z?#%.txt", "...", "a/b/"] {
            assert!(check_key(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn error_codes_and_messages_come_out_of_the_reply() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId</Code>\
                   <Message>no key &quot;x&quot; &amp; more</Message></Error>";
        assert_eq!(
            first_value(xml, "Code").as_deref(),
            Some("InvalidAccessKeyId")
        );
        assert_eq!(
            first_value(xml, "Message").as_deref(),
            Some("no key \"x\" & more")
        );
        assert!(error_inside_ok(xml).is_err());
        assert!(error_inside_ok("<CopyObjectResult><ETag>x</ETag></CopyObjectResult>").is_ok());
    }

    #[test]
    fn statuses_map_to_kinds() {
        assert!(matches!(
            error_for(404, String::new(), String::new()),
            S3Error::NotFound
        ));
        assert!(matches!(
            error_for(403, "AccessDenied".into(), String::new()),
            S3Error::Denied { .. }
        ));
        assert!(matches!(
            error_for(503, "SlowDown".into(), String::new()),
            S3Error::Unavailable { status: 503, .. }
        ));
        assert!(matches!(
            error_for(416, "InvalidRange".into(), String::new()),
            S3Error::Refused { status: 416, .. }
        ));
        assert!(matches!(
            error_for(412, String::new(), String::new()),
            S3Error::Changed
        ));
    }

    #[test]
    fn entities_and_character_references_decode() {
        assert_eq!(unescape("a&lt;b&#62;c&#x41;&bogus;d"), "a<b>cA&bogus;d");
        assert_eq!(unescape("plain"), "plain");
    }

    #[test]
    fn list_multipart_reply_elements_are_read() {
        let xml = "<ListMultipartUploadsResult><Upload><Key>a/b</Key><UploadId>1</UploadId>\
                   </Upload><Upload><Key>c&amp;d</Key><UploadId>2</UploadId></Upload>\
                   <IsTruncated>false</IsTruncated></ListMultipartUploadsResult>";
        let found: Vec<_> = elements(xml, "Upload")
            .map(|u| (first_value(u, "Key"), first_value(u, "UploadId")))
            .collect();
        assert_eq!(
            found,
            vec![
                (Some("a/b".into()), Some("1".into())),
                (Some("c&d".into()), Some("2".into()))
            ]
        );
    }

    /// The first bytes a client of `endpoint` (`{addr}` for a listener's address)
    /// sends when it checks its bucket.
    fn first_bytes(endpoint: &str) -> Vec<u8> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint =
            endpoint.replace("{addr}", &listener.local_addr().expect("addr").to_string());
        let settings = S3Settings {
            endpoint,
            region: "garage".into(),
            bucket: "b".into(),
            access_key_id: "GK0".into(),
            secret_access_key: "0".into(),
            session_token: None,
            timeout: Duration::from_secs(30),
        };
        let client = S3Client::new(&settings).expect("client");
        std::thread::scope(|scope| {
            let asking = scope.spawn(|| client.check_bucket());
            let (mut conn, _) = listener.accept().expect("accept");
            conn.set_read_timeout(Some(Duration::from_secs(30)))
                .expect("timeout");
            let mut first = [0u8; 4];
            conn.read_exact(&mut first).expect("first bytes");
            drop(conn);
            assert!(asking.join().expect("join").is_err(), "no store answered");
            first.to_vec()
        })
    }

    #[test]
    fn connections_speak_http_or_tls_as_the_endpoint_says() {
        assert_eq!(first_bytes("http://{addr}"), b"GET ");
        // A TLS record of type handshake (22): the ClientHello.
        assert_eq!(first_bytes("https://{addr}")[0], 22);
    }

    #[test]
    fn retries_wait_longer_each_time_and_stop_at_the_count_or_the_bound() {
        let budget = Duration::from_secs(30);
        let ms = Duration::from_millis;
        let waits: Vec<_> = (0..=RETRIES)
            .map(|retry| backoff(retry, Duration::ZERO, budget, 0.0))
            .collect();
        assert_eq!(waits, [Some(ms(50)), Some(ms(200)), Some(ms(800)), None]);
        // Jitter takes up to half off, never more, never adds.
        assert_eq!(backoff(2, Duration::ZERO, budget, 1.0), Some(ms(400)));
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
            let wait = backoff(1, Duration::ZERO, budget, j).expect("a wait");
            assert!(wait > ms(100) && wait <= ms(200), "{wait:?}");
        }
        // No attempt starts past the bound (--s3-timeout) from the first.
        assert_eq!(backoff(0, ms(990), Duration::from_secs(1), 0.0), None);
        assert_eq!(
            backoff(0, ms(900), Duration::from_secs(1), 0.0),
            Some(ms(50))
        );
        assert_eq!(backoff(1, Duration::from_secs(40), budget, 0.0), None);
    }

    #[test]
    fn only_the_stores_failures_and_lost_connections_are_retried() {
        let busy = error_for(503, "SlowDown".into(), String::new());
        let lost = S3Error::Transport("connection reset".into());
        let refused = error_for(400, "InvalidPart".into(), String::new());
        assert!(worth_repeating(&busy, Repeat::Idempotent));
        assert!(worth_repeating(&busy, Repeat::OnFailureReply));
        assert!(worth_repeating(&lost, Repeat::Idempotent));
        assert!(!worth_repeating(&lost, Repeat::OnFailureReply));
        for final_one in [refused, S3Error::NotFound, S3Error::Changed] {
            assert!(
                !worth_repeating(&final_one, Repeat::Idempotent),
                "{final_one}"
            );
        }
    }

    #[test]
    fn a_ranged_reply_gives_the_whole_size() {
        assert_eq!(whole_size("bytes 100-4095/4096", 100, 3996), Some(4096));
        assert_eq!(whole_size("bytes 100-4095/*", 100, 3996), Some(4096));
        // Not the range asked for, or a size it does not fit in.
        for bad in [
            "bytes 0-4095/4096",
            "bytes 100-4094/4096",
            "bytes 100-4095/4000",
            "bytes */4096",
            "",
            "items 100-4095/4096",
        ] {
            assert_eq!(whole_size(bad, 100, 3996), None, "{bad:?}");
        }
    }

    #[test]
    fn times_parse() {
        let t = parse_iso_time("2026-12-02T04:38:51.000Z").expect("iso");
        let h = parse_http_date("Wed, 02 Dec 2026 04:38:51 GMT").expect("http date");
        assert_eq!(t, h);
    }
}
