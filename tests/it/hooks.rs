//! Upload hooks (`--on-upload`): a shell hook moves every upload of several clients
//! into an inbox, each file once and byte-exact; the `226` never waits for a hook; a
//! hook that fails and one that times out are logged (its process group killed) and
//! the session goes on; and the hook's environment names the upload (user, virtual
//! and host path, size, client, action) for STOR, APPE and STOU, in a user's home too.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread;

use crate::common::{eventually, hash_password, names_in, pattern, Ftp, TestServer, WAIT};

/// A server whose upload hook is `hook`, with the extra arguments after it.
fn server_with_hook(hook: &str, extra: &[&str]) -> TestServer {
    let mut args = vec!["--on-upload", hook];
    args.extend_from_slice(extra);
    TestServer::start(&args)
}

/// `path` between single quotes for `sh` (the test's temporary paths hold none).
fn quoted(path: &Path) -> String {
    let text = path.display().to_string();
    assert!(!text.contains('\''), "{text}");
    format!("'{text}'")
}

#[test]
fn a_hook_moves_every_upload_of_four_clients_into_the_inbox_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inbox = dir.path().join("inbox");
    fs::create_dir(&inbox).expect("mkdir");
    let arrivals = dir.path().join("arrivals");
    // `mv -n` never overwrites: a file moved twice would be missing the second time
    // and make the hook fail, which the log would show.
    let hook = format!(
        "mv -n \"$FTP_FILE\" {inbox}/ && echo \"$FTP_PATH\" >> {arrivals}",
        inbox = quoted(&inbox),
        arrivals = quoted(&arrivals)
    );
    let server = server_with_hook(&hook, &[]);
    let clients: Vec<_> = (0..4u64)
        .map(|c| {
            let addr = server.addr;
            thread::spawn(move || {
                let mut ftp = Ftp::connect(addr);
                ftp.login();
                let mut sent = Vec::new();
                for n in 0..5u64 {
                    let name = format!("c{c}-f{n}.bin");
                    let bytes = pattern(10_000 + (c * 5 + n) as usize * 7_919, c * 5 + n + 1);
                    ftp.stor(&name, &bytes);
                    sent.push((name, bytes));
                }
                ftp.expect("QUIT", 221);
                sent
            })
        })
        .collect();
    let sent: Vec<(String, Vec<u8>)> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client thread"))
        .collect();
    assert_eq!(sent.len(), 20);

    eventually("20 files in the inbox", || names_in(&inbox).len() == 20);
    eventually("20 arrivals", || {
        fs::read_to_string(&arrivals).is_ok_and(|a| a.lines().count() == 20)
    });
    for (name, bytes) in &sent {
        let got = fs::read(inbox.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        crate::common::assert_same(&got, bytes, name);
    }
    let mut arrived: Vec<String> = fs::read_to_string(&arrivals)
        .expect("arrivals")
        .lines()
        .map(str::to_owned)
        .collect();
    arrived.sort();
    let mut want: Vec<String> = sent.iter().map(|(name, _)| format!("/{name}")).collect();
    want.sort();
    assert_eq!(arrived, want, "each upload's hook ran once");
    // Every upload left the root (no temporary file either).
    assert!(
        names_in(server.root()).is_empty(),
        "{:?}",
        names_in(server.root())
    );
    // The log says a hook is done after its process ended, a moment after its work.
    eventually("20 hooks done in the log", || {
        server.log().matches(": done in ").count() == 20
    });
    let log = server.log();
    assert!(!log.contains("failed after"), "{log}");
    assert!(!log.contains("dropped"), "{log}");
}

#[test]
fn the_226_never_waits_for_a_hook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let done = dir.path().join("done");
    // Each hook sleeps 5 s, then says which upload it was for.
    let hook = format!("sleep 5; echo \"$FTP_PATH\" >> {}", quoted(&done));
    let server = server_with_hook(&hook, &[]);
    let mut ftp = server.login();
    // Three uploads in a row: two hooks sleep (two hook workers), one waits queued,
    // and every 226 comes while they do.
    for name in ["one.txt", "two.txt", "three.txt"] {
        ftp.stor(name, name.as_bytes());
        assert!(
            !done.exists(),
            "a hook finished before the 226 of {name}: the 226 waited for it"
        );
    }
    // The session is not held either.
    ftp.expect("NOOP", 200);
    assert_eq!(ftp.retr("one.txt"), b"one.txt");
    assert!(!done.exists());
    ftp.expect("QUIT", 221);
    eventually("the three hooks", || {
        fs::read_to_string(&done).is_ok_and(|d| d.lines().count() == 3)
    });
    let mut ran: Vec<String> = fs::read_to_string(&done)
        .expect("done")
        .lines()
        .map(str::to_owned)
        .collect();
    ran.sort();
    assert_eq!(ran, ["/one.txt", "/three.txt", "/two.txt"]);
}

#[test]
fn failing_and_timed_out_hooks_are_logged_and_the_session_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("sleeper.pid");
    // fail*: a message on stderr, then exit 1; slow*: a child that would sleep a
    // minute, past the 1 s timeout; anything else: a line on stdout.
    let hook = format!(
        "case \"$FTP_PATH\" in \
           */fail*) echo \"cannot take $FTP_PATH\" >&2; exit 1 ;; \
           */slow*) sleep 60 & echo $! > {pid}; wait ;; \
           *) echo \"took $FTP_PATH\" ;; \
         esac",
        pid = quoted(&pid_file)
    );
    let mut server = server_with_hook(&hook, &["--hook-timeout", "1", "--grace", "5"]);
    let mut ftp = server.login();
    ftp.stor("fail.txt", b"fail");
    ftp.stor("slow.txt", b"slow");
    ftp.expect("NOOP", 200);
    ftp.stor("fine.txt", b"fine");
    assert_eq!(ftp.retr("fail.txt"), b"fail");
    assert_eq!(ftp.retr("slow.txt"), b"slow");

    eventually("the three hooks' outcomes in the log", || {
        let log = server.log();
        log.contains("upload hook for STOR /fail.txt by anonymous: failed after")
            && log.contains("upload hook for STOR /slow.txt by anonymous: timed out after 1 s")
            && log.contains("upload hook for STOR /fine.txt by anonymous: done in")
    });
    let log = server.log();
    assert!(
        log.contains("upload hook for STOR /fail.txt by anonymous: cannot take /fail.txt"),
        "stderr goes to the log: {log}"
    );
    assert!(
        log.contains("upload hook for STOR /fine.txt by anonymous: took /fine.txt"),
        "stdout goes to the log: {log}"
    );
    assert!(log.contains("exit status 1"), "{log}");
    assert!(log.contains("its process group was killed"), "{log}");
    // The hook's own child went with its process group.
    let pid: u32 = fs::read_to_string(&pid_file)
        .expect("the slow hook's pid file")
        .trim()
        .parse()
        .expect("a pid");
    eventually("the slow hook's sleep to be killed", || {
        fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
    });

    // The session still works, and so do new ones.
    ftp.stor("after.txt", b"after");
    ftp.expect("QUIT", 221);
    let mut other = server.login();
    other.expect("NOOP", 200);
    other.expect("QUIT", 221);
    eventually("the fourth hook", || {
        server
            .log()
            .contains("upload hook for STOR /after.txt by anonymous: done in")
    });

    // At shutdown the counts are logged.
    server.signal("TERM");
    let status = server.wait_exit(WAIT).expect("the server exits");
    assert!(status.success(), "{status:?}");
    let log = server.log();
    assert!(
        log.contains("upload hooks: 4 run, 1 failed, 1 timed out, 0 dropped"),
        "{log}"
    );
}

/// The `env` a hook wrote, as a map.
fn env_of(file: &Path) -> BTreeMap<String, String> {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The `FTP_*` variables of `env`.
fn ftp_vars(env: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    env.iter()
        .filter(|(k, _)| k.starts_with("FTP_"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn the_hook_environment_names_the_upload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("alice/sub")).expect("mkdir");
    let envs = dir.path().join("envs");
    fs::create_dir(&envs).expect("mkdir");
    let users = dir.path().join("users.toml");
    let mut file = fs::File::create(&users).expect("users file");
    write!(
        file,
        "[[user]]\nname = \"alice\"\npassword = \"{}\"\nhome = \"/alice\"\n\
         permissions = [\"read\", \"write\"]\n",
        hash_password("alice-pw")
    )
    .expect("write users");
    drop(file);
    // One env file per hook run, numbered in the order the uploads came (one hook
    // worker, so one at a time), written whole before it gets its name.
    let hook = format!(
        "n=$(ls {envs} | wc -l); env > {envs}/.part && mv {envs}/.part {envs}/$n.env",
        envs = quoted(&envs)
    );
    let users = users.display().to_string();
    let server = TestServer::start_in(
        dir,
        root,
        &[
            "--users",
            &users,
            "--on-upload",
            &hook,
            "--hook-workers",
            "1",
        ],
    );
    let root = fs::canonicalize(server.root()).expect("canonical root");
    // The n-th env file, once it has its name (`.part` is one being written).
    let wait_for = |n: usize| {
        let file = PathBuf::from(&envs).join(format!("{}.env", n - 1));
        eventually(&format!("env file {n}"), || file.exists());
        let named = names_in(&envs).into_iter().filter(|f| f.ends_with(".env"));
        assert_eq!(named.count(), n, "one env file per upload");
        file
    };

    // An anonymous STOR.
    let mut anon = server.login();
    anon.stor("top.bin", &pattern(1234, 1));
    let env = env_of(&wait_for(1));
    let vars = ftp_vars(&env);
    let top = root.join("top.bin").display().to_string();
    let want: BTreeMap<&str, &str> = [
        ("FTP_ACTION", "STOR"),
        ("FTP_USER", "anonymous"),
        ("FTP_PATH", "/top.bin"),
        ("FTP_FILE", &top),
        ("FTP_SIZE", "1234"),
        ("FTP_CLIENT", "127.0.0.1"),
    ]
    .into_iter()
    .collect();
    assert_eq!(vars, want);
    assert!(!env.contains_key("FTP_SHA256"), "no digest is computed");
    // The server's own environment is kept (the hook found `ls` on the PATH).
    assert!(env.contains_key("PATH"), "{env:?}");
    anon.expect("QUIT", 221);

    // alice, in her home /alice: the virtual path is hers, the host path the real one.
    let mut alice = Ftp::connect(server.addr);
    alice.expect("USER alice", 331);
    alice.expect("PASS alice-pw", 230);
    alice.expect("TYPE I", 200);
    alice.expect("CWD sub", 250);
    alice.stor("a b.txt", b"12345");
    let vars_of = |n| {
        let env = env_of(&wait_for(n));
        ftp_vars(&env)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<BTreeMap<String, String>>()
    };
    let vars = vars_of(2);
    assert_eq!(vars["FTP_ACTION"], "STOR");
    assert_eq!(vars["FTP_USER"], "alice");
    assert_eq!(vars["FTP_PATH"], "/sub/a b.txt");
    assert_eq!(
        vars["FTP_FILE"],
        root.join("alice/sub/a b.txt").display().to_string()
    );
    assert_eq!(vars["FTP_SIZE"], "5");

    // APPE: the size is the whole file's, not what this upload sent.
    let mut data = alice.epsv();
    alice.expect("APPE a b.txt", 150);
    data.write_all(b"678").expect("write");
    drop(data);
    alice.expect_reply(226);
    let vars = vars_of(3);
    assert_eq!(vars["FTP_ACTION"], "APPE");
    assert_eq!(vars["FTP_PATH"], "/sub/a b.txt");
    assert_eq!(vars["FTP_SIZE"], "8");
    assert_eq!(
        fs::read(root.join("alice/sub/a b.txt")).expect("read"),
        b"12345678"
    );

    // STOU: the name the server picked.
    let mut data = alice.epsv();
    let r = alice.expect("STOU", 150);
    let name = r
        .text
        .strip_prefix("FILE: ")
        .unwrap_or_else(|| panic!("{r:?}"))
        .to_owned();
    data.write_all(b"unique").expect("write");
    drop(data);
    alice.expect_reply(226);
    let vars = vars_of(4);
    assert_eq!(vars["FTP_ACTION"], "STOU");
    assert_eq!(vars["FTP_PATH"], format!("/sub/{name}"));
    assert_eq!(
        vars["FTP_FILE"],
        root.join("alice/sub").join(&name).display().to_string()
    );
    assert_eq!(vars["FTP_SIZE"], "6");
    alice.expect("QUIT", 221);

    // A refused upload runs no hook: REST past the end is refused before any data.
    // The next hook (hooks run in order, one worker) is the next good upload's.
    let mut anon = server.login();
    anon.expect("REST 999999", 350);
    let _data = anon.epsv();
    anon.expect("STOR top.bin", 554);
    anon.stor("next.bin", b"next");
    anon.expect("QUIT", 221);
    let vars = vars_of(5);
    assert_eq!(vars["FTP_PATH"], "/next.bin");
    assert_eq!(vars["FTP_SIZE"], "4");
    eventually("5 hooks done in the log", || {
        server.log().matches(": done in ").count() == 5
    });
}
