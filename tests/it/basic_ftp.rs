//! basic-ftp (the npm package, a Node.js FTP client library) against our server:
//! FEAT, MLSD listings (it switches to MLSD when FEAT lists MLST), EPSV transfers,
//! download and resumed download, upload and append, SIZE, MDTM, MKD/CWD (ensureDir),
//! rename, delete, recursive removal, and whole-tree upload and download.
//!
//! basic-ftp is installed by `.ci/run` into `target/peers/npm` (pinned, and kept there
//! between runs); without it the test skips with a printed reason, under `CI=true` it
//! fails.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::common::{
    assert_same, assert_same_tree, have, pattern, require, run_peer, write_sample_tree, TestServer,
};

/// Where `.ci/run` installs the package (`npm install --prefix target/peers/npm`).
fn module_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers/npm/node_modules/basic-ftp")
}

/// Runs with: the module's directory, the port, a local scratch directory.
const SCRIPT: &str = r#"
const assert = require("assert");
const fs = require("fs");
const path = require("path");
const ftp = require(process.argv[1]);
const port = Number(process.argv[2]);
const local = process.argv[3];
const at = (name) => path.join(local, name);

(async () => {
    const client = new ftp.Client(60000);
    await client.access({ host: "127.0.0.1", port, user: "anonymous", password: "basic-ftp@" });
    const features = await client.features();
    for (const f of ["MLST", "EPSV", "SIZE", "MDTM", "REST", "UTF8"]) {
        assert(features.has(f), `FEAT lacks ${f}`);
    }
    assert.strictEqual(await client.pwd(), "/");

    // MLSD listing, parsed into types, sizes and dates.
    const list = await client.list();
    const byName = Object.fromEntries(list.map((e) => [e.name, e]));
    assert.deepStrictEqual(Object.keys(byName).sort(), ["down.bin", "tree"]);
    assert.strictEqual(byName["down.bin"].type, ftp.FileType.File);
    assert.strictEqual(byName["down.bin"].size, fs.statSync(at("expected-down.bin")).size);
    assert.strictEqual(byName["down.bin"].modifiedAt.toISOString(), "2021-03-04T05:06:07.000Z");
    assert.strictEqual(byName["tree"].type, ftp.FileType.Directory);

    // Download, and a download resumed from a partial local file (REST).
    await client.downloadTo(at("down.bin"), "down.bin");
    await client.downloadTo(at("partial.bin"), "down.bin", fs.statSync(at("partial.bin")).size);

    // SIZE and MDTM.
    assert.strictEqual(await client.size("down.bin"), fs.statSync(at("expected-down.bin")).size);
    assert.strictEqual((await client.lastMod("down.bin")).toISOString(), "2021-03-04T05:06:07.000Z");

    // Upload; upload in two parts with APPE.
    await client.uploadFrom(at("up.bin"), "up.bin");
    await client.uploadFrom(at("part1.bin"), "appended.bin");
    await client.appendFrom(at("part2.bin"), "appended.bin");

    // Directories, rename, delete.
    await client.ensureDir("made/inner");
    assert.strictEqual(await client.pwd(), "/made/inner");
    await client.cd("/");
    await client.uploadFrom(at("up.bin"), "to-move.bin");
    await client.rename("to-move.bin", "made/inner/moved.bin");
    const inner = await client.list("made/inner");
    assert.deepStrictEqual(inner.map((e) => e.name), ["moved.bin"]);
    await client.remove("made/inner/moved.bin");
    await client.uploadFrom(at("up.bin"), "made/inner/again.bin");
    await client.removeDir("made");  // recursive: DELE, RMD
    await assert.rejects(client.size("made/inner/again.bin"), /550/);

    // Whole trees, both ways.
    await client.uploadFromDir(at("tree-src"), "/tree-up");
    await client.cd("/");
    await client.downloadToDir(at("tree-down"), "/tree");

    client.close();
    console.log("ok");
})().catch((e) => {
    console.error(e);
    process.exit(1);
});
"#;

#[test]
fn basic_ftp_lists_downloads_uploads_and_manages_trees() {
    let module = module_dir();
    if !require(
        have("node", &["--version"]) && module.join("package.json").exists(),
        "node with basic-ftp (.ci/run: npm install --prefix target/peers/npm basic-ftp)",
    ) {
        return;
    }
    let version = fs::read_to_string(module.join("package.json"))
        .ok()
        .and_then(|p| {
            p.lines()
                .find(|l| l.trim_start().starts_with("\"version\""))
                .map(|l| l.trim().to_owned())
        })
        .unwrap_or_default();
    eprintln!("peer: basic-ftp {version}");

    let server = TestServer::start(&[]);
    let root = server.root();
    let local = server.dir.path().join("local");
    fs::create_dir(&local).expect("mkdir");
    let down = pattern((3 << 20) + 5, 71);
    fs::write(root.join("down.bin"), &down).expect("write");
    // 2021-03-04 05:06:07 UTC, for MDTM and MLSD's modify fact.
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_614_834_367);
    fs::File::options()
        .write(true)
        .open(root.join("down.bin"))
        .and_then(|f| f.set_modified(when))
        .expect("set mtime");
    fs::write(local.join("expected-down.bin"), &down).expect("write");
    fs::write(local.join("partial.bin"), &down[..1_500_001]).expect("write");
    write_sample_tree(&root.join("tree"), 72);
    let up = pattern((2 << 20) + 1, 73);
    fs::write(local.join("up.bin"), &up).expect("write");
    fs::write(local.join("part1.bin"), &up[..700_000]).expect("write");
    fs::write(local.join("part2.bin"), &up[700_000..]).expect("write");
    write_sample_tree(&local.join("tree-src"), 74);

    let mut cmd = Command::new("node");
    cmd.arg("-e")
        .arg(SCRIPT)
        .arg(&module)
        .arg(server.addr.port().to_string())
        .arg(&local);
    let run = run_peer(cmd);
    assert!(
        run.status.success() && run.stdout == "ok\n",
        "basic-ftp: {}\n{}\nserver log:\n{}",
        run.stdout,
        run.stderr,
        server.log()
    );
    assert_same(
        &fs::read(local.join("down.bin")).expect("read"),
        &down,
        "download",
    );
    assert_same(
        &fs::read(local.join("partial.bin")).expect("read"),
        &down,
        "resumed download",
    );
    assert_same(&fs::read(root.join("up.bin")).expect("read"), &up, "upload");
    assert_same(
        &fs::read(root.join("appended.bin")).expect("read"),
        &up,
        "upload, then append",
    );
    assert!(!root.join("made").exists(), "removeDir left it");
    assert_same_tree(&root.join("tree-up"), &local.join("tree-src"));
    assert_same_tree(&local.join("tree-down"), &root.join("tree"));
    let log = server.log();
    for line in [
        ": MLSD",
        ": EPSV",
        ": REST 1500001",
        ": APPE appended.bin",
        ": RMD",
    ] {
        assert!(log.contains(line), "no {line:?} in the server log:\n{log}");
    }
}
