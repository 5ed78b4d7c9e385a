//! The S3 backend's object-store client against a real Garage: every request it
//! makes, byte-exact, its failures named by kind, its connections kept from one
//! request to the next, and its writes sent again, a bounded number of times, when
//! the store answers that it is busy.

use simple_ftp::storage::s3::client::{S3Client, S3Error};

use crate::common::{assert_same, pattern};
use crate::garage::{CountingRelay, Garage};

/// A relay in front of `garage` and a client that talks to the store through it.
fn through_relay(garage: &Garage) -> (CountingRelay, S3Client) {
    let relay = CountingRelay::to(garage);
    let mut settings = garage.settings();
    settings.endpoint = relay.endpoint.clone();
    let client = S3Client::new(&settings).expect("client");
    (relay, client)
}

fn read_all(client: &S3Client, key: &str, offset: u64) -> Vec<u8> {
    let mut reader = client.get(key, offset, None).expect("get");
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut out).expect("read body");
    assert_eq!(out.len() as u64, reader.len());
    out
}

#[test]
fn put_get_head_ranged_get_and_delete_are_byte_exact() {
    let Some(garage) = Garage::start_or_skip() else {
        return;
    };
    let client = garage.client();
    let body = pattern(300_001, 7);
    client.put("dir/a b:c.bin", &body).expect("put");
    assert_same(&read_all(&client, "dir/a b:c.bin", 0), &body, "whole get");
    assert_same(
        &read_all(&client, "dir/a b:c.bin", 123_456),
        &body[123_456..],
        "ranged get",
    );
    let info = client.head("dir/a b:c.bin").expect("head").expect("exists");
    assert_eq!(info.size, body.len() as u64);
    assert!(info.modified > std::time::SystemTime::UNIX_EPOCH);
    assert!(client.head("dir/missing").expect("head").is_none());
    assert!(matches!(
        client.get("dir/missing", 0, None),
        Err(S3Error::NotFound)
    ));
    // A read that names another version of the object is refused, not mixed.
    assert!(matches!(
        client.get("dir/a b:c.bin", 0, Some("\"0123\"")),
        Err(S3Error::Changed)
    ));
    client.delete("dir/a b:c.bin").expect("delete");
    assert!(client.head("dir/a b:c.bin").expect("head").is_none());
    // Deleting what is not there is no error (as in S3).
    client.delete("dir/a b:c.bin").expect("delete again");
}

#[test]
fn multipart_upload_completes_whole_and_abort_leaves_nothing() {
    let Some(garage) = Garage::start_or_skip() else {
        return;
    };
    let client = garage.client();
    let body = pattern(5 * 1024 * 1024 + 777, 3);
    let (first, last) = body.split_at(5 * 1024 * 1024);
    let id = client.create_multipart("up/big").expect("create");
    // Not visible while in progress.
    assert!(client.head("up/big").expect("head").is_none());
    let etags = vec![
        client.upload_part("up/big", &id, 1, first).expect("part 1"),
        client.upload_part("up/big", &id, 2, last).expect("part 2"),
    ];
    let pending = client.list_multipart("up/").expect("list uploads");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].key, "up/big");
    client
        .complete_multipart("up/big", &id, &etags)
        .expect("complete");
    assert_same(&read_all(&client, "up/big", 0), &body, "multipart object");
    assert!(client.list_multipart("up/").expect("list").is_empty());

    let id = client.create_multipart("up/dropped").expect("create");
    client
        .upload_part("up/dropped", &id, 1, first)
        .expect("part");
    client.abort_multipart("up/dropped", &id).expect("abort");
    assert!(client.head("up/dropped").expect("head").is_none());
    assert!(client.list_multipart("up/").expect("list").is_empty());
}

#[test]
fn listings_group_at_the_delimiter_and_continue_past_a_page() {
    let Some(garage) = Garage::start_or_skip() else {
        return;
    };
    let client = garage.client();
    for i in 0..25 {
        client.put(&format!("l/f{i:02}"), b"x").expect("put");
    }
    client.put("l/sub/deep", b"y").expect("put");
    client.put("l/marker/", b"").expect("put");
    let mut keys = Vec::new();
    let mut prefixes = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = client
            .list_page("l/", Some("/"), token.as_deref(), Some(10))
            .expect("list");
        pages += 1;
        keys.extend(page.objects.into_iter().map(|o| o.key));
        prefixes.extend(page.prefixes);
        match page.next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert!(pages >= 3, "{pages} pages");
    let want: Vec<String> = (0..25).map(|i| format!("l/f{i:02}")).collect();
    assert_eq!(keys, want);
    prefixes.sort();
    assert_eq!(prefixes, vec!["l/marker/".to_owned(), "l/sub/".to_owned()]);
}

#[test]
fn copies_whole_and_in_parts_are_byte_exact() {
    let Some(garage) = Garage::start_or_skip() else {
        return;
    };
    let client = garage.client();
    let body = pattern(11 * 1024 * 1024 + 5, 9);
    client.put("c/src x&y", &body).expect("put");
    client
        .copy("c/src x&y", "c/whole", body.len() as u64)
        .expect("copy");
    assert_same(&read_all(&client, "c/whole", 0), &body, "copy");
    // The path objects past 5 GiB take, in parts of 5 MiB here.
    client
        .copy_in_parts("c/src x&y", "c/parts", body.len() as u64, 5 * 1024 * 1024)
        .expect("copy in parts");
    assert_same(&read_all(&client, "c/parts", 0), &body, "copy in parts");
    assert!(client.list_multipart("c/").expect("list").is_empty());
}

#[test]
fn wrong_credentials_missing_bucket_and_no_store_are_told_apart() {
    let Some(garage) = Garage::start_or_skip() else {
        return;
    };
    let mut settings = garage.settings();
    settings.secret_access_key = "0".repeat(64);
    let denied = S3Client::new(&settings).expect("client").check_bucket();
    assert!(matches!(denied, Err(S3Error::Denied { .. })), "{denied:?}");

    let mut settings = garage.settings();
    settings.bucket = "no-such-bucket".into();
    let missing = S3Client::new(&settings).expect("client").check_bucket();
    assert!(
        matches!(missing, Err(S3Error::NotFound | S3Error::Denied { .. })),
        "{missing:?}"
    );

    let mut settings = garage.settings();
    settings.endpoint = format!("http://127.0.0.1:{}", crate::common::free_port());
    let gone = S3Client::new(&settings).expect("client").check_bucket();
    assert!(matches!(gone, Err(S3Error::Transport(_))), "{gone:?}");
}

/// Every request leaves its connection fit for the next: a GET read to its length
/// gives it back to the pool (it used to be closed, so each download opened a
/// connection of its own, a TLS handshake too on https). Counted at a relay: 24
/// requests, one after another, on one connection. (At most 2: the pool lets a
/// connection go after 15 s idle, which a stalled machine could reach once.)
#[test]
fn one_connection_serves_requests_one_after_another() {
    let Some(garage) = Garage::start_or_skip() else {
        return;
    };
    let (relay, client) = through_relay(&garage);
    let body = pattern(4096, 11);
    client.put("reuse/small", &body).expect("put");
    for _ in 0..10 {
        let info = client.head("reuse/small").expect("head").expect("exists");
        let mut reader = client.get("reuse/small", 0, Some(&info.etag)).expect("get");
        // Exactly the length, as the transfer reads it: no read past the end.
        let mut got = vec![0; body.len()];
        std::io::Read::read_exact(&mut reader, &mut got).expect("read body");
        drop(reader);
        assert_same(&got, &body, "get");
    }
    client.delete("reuse/small").expect("delete");
    client.delete("reuse/small").expect("delete again");
    assert!(client.head("reuse/small").expect("head").is_none());
    assert!(
        relay.connections() <= 2,
        "{} connections for 24 requests",
        relay.connections()
    );
}

/// A write the store answers `503 Slow Down` is sent again, up to three more times:
/// three refusals still end in the object, four are the caller's error (the store's
/// own, `Unavailable`). Reads are not retried here: a refused GET is an error at once.
/// Counted at a relay that answers the refusals itself.
#[test]
fn writes_refused_as_busy_are_sent_again_three_times_at_most() {
    let Some(garage) = Garage::start_or_skip() else {
        return;
    };
    let (relay, client) = through_relay(&garage);
    let tries = |key: &str| {
        let of: Vec<_> = relay
            .requests()
            .into_iter()
            .filter(|r| r.key() == key)
            .collect();
        (of.len(), of.iter().filter(|r| r.refused).count())
    };

    relay.slow_down("PutObject", 3);
    client
        .put("retry/a", b"abc")
        .expect("put after three refusals");
    assert_eq!(tries("retry/a"), (4, 3));
    assert_same(&read_all(&garage.client(), "retry/a", 0), b"abc", "put");

    relay.slow_down("PutObject", usize::MAX);
    let refused = client.put("retry/b", b"x");
    assert!(
        matches!(refused, Err(S3Error::Unavailable { status: 503, .. })),
        "{refused:?}"
    );
    assert_eq!(tries("retry/b"), (4, 4));
    assert!(garage.client().head("retry/b").expect("head").is_none());

    relay.slow_down("GetObject", 1);
    let read = client.get("retry/a", 0, None);
    assert!(
        matches!(read, Err(S3Error::Unavailable { status: 503, .. })),
        "{:?}",
        read.err()
    );
    assert_eq!(tries("retry/a"), (5, 4));
}
