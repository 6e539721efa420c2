//! Catalog compilation at fleet scale: builds a synthetic site in a temporary directory
//! (two datacenters, two roles, 50 resources per node), compiles every node's catalog
//! and checks parity the way `tandem check` does (`catalog::parity::Streaming`: each
//! catalog compared and dropped), and prints the time and the peak resident memory
//! (VmHWM). Two cases:
//!
//! - `shared` (default): plain resources, rendered files whose text most nodes share,
//!   and an `each` module;
//! - `per-node`: 25 plain resources and 25 files from templates naming `node.name` and
//!   `node.address` (about 150 bytes each), so every node's content is its own.
//!
//! Every node has a variable of its own, so every node is a parity subject (compiled in
//! both datacenters). `cargo bench --bench compile -- per-node 1000 5000 10000` runs
//! each size in its own process so that every peak is that size's own;
//! `cargo bench --bench compile -- write DIR per-node 10000` only writes the site to
//! DIR (to time `tandem check` on it). Without a release build at hand, `cargo test
//! --bench compile -- ...` runs the same in the debug profile (relative figures only).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use tandem::catalog::{parity, Compiler};
use tandem::manifest::Site;

#[derive(Clone, Copy, PartialEq)]
enum Case {
    Shared,
    PerNode,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Shared => "shared",
            Case::PerNode => "per-node",
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let case = if args.iter().any(|a| a == "per-node") {
        Case::PerNode
    } else {
        Case::Shared
    };
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if args.first().map(String::as_str) == Some("write") {
        let dir = args.get(1).expect("write DIR [per-node] SIZE");
        let size = sizes.first().copied().unwrap_or(10_000);
        write_site(Path::new(dir), size, case);
        println!("wrote a {} site of {size} nodes to {dir}", case.name());
        return;
    }
    match sizes.as_slice() {
        [] => run_each(&[1_000, 5_000, 10_000], case),
        [one] => run(*one, case),
        many => run_each(many, case),
    }
}

fn run_each(sizes: &[usize], case: Case) {
    let exe = std::env::current_exe().expect("own executable");
    for size in sizes {
        let status = std::process::Command::new(&exe)
            .args([size.to_string(), case.name().to_string()])
            .status()
            .expect("run one size");
        assert!(status.success(), "size {size} failed");
    }
}

fn run(nodes: usize, case: Case) {
    let dir = tempfile::tempdir().expect("temp dir");
    write_site(dir.path(), nodes, case);
    let start = Instant::now();
    let site = Site::load(dir.path()).expect("load");
    let loaded = start.elapsed();
    let compiler = Compiler::new(&site).expect("compiler");
    let t = Instant::now();
    // As `tandem check` does: each catalog counted, compared and dropped.
    let mut resources = 0;
    let mut streaming = parity::Streaming::new(&compiler, &site.nodes);
    for node in &site.nodes {
        let catalog = compiler.compile(node).expect("compile");
        resources += catalog.resources.len();
        streaming.own(&catalog, &mut |_| {});
    }
    let parity = streaming.finish(&mut |_| {});
    assert!(
        parity.errors.is_empty() && parity.failures.is_empty(),
        "{parity:?}"
    );
    println!(
        "{:<8} nodes {nodes:>6}  resources {resources:>7}  load {:>6.2}s  compile+parity {:>6.2}s  total {:>6.2}s  cpu {:>6.2}s  peak RSS {:>6} MiB",
        case.name(),
        loaded.as_secs_f64(),
        t.elapsed().as_secs_f64(),
        start.elapsed().as_secs_f64(),
        cpu_seconds(),
        peak_rss_kib() / 1024,
    );
}

/// User plus system CPU time of this process (fields 14 and 15 of /proc/self/stat,
/// in clock ticks of 1/100 s on Linux), which unlike wall time does not depend on what
/// else the machine is running.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The command name (field 2) may hold spaces; count from after its `)`.
            let rest = &s[s.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}

/// VmHWM of this process, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// Shared: 20 plain resources (module `base`), 10 rendered files (module `config`), and
/// 5 instances of a 4-resource `each` module (`worker`): 50 per node. Per-node: `base`,
/// 5 more directories and 25 files naming the node (module `pernode`): 50 per node.
fn write_site(root: &Path, nodes: usize, case: Case) {
    write(
        &root.join("manifests/site.toml"),
        "[site]\nname = \"bench\"\n[vars]\nenvironment = \"bench\"\n\
         [datacenters.east]\nprimary = true\nprovider = \"static\"\n\
         [datacenters.west]\nprovider = \"static\"\n",
    );
    let modules = match case {
        Case::Shared => "\"base\", \"config\", \"worker\"",
        Case::PerNode => "\"base\", \"pernode\"",
    };
    for role in ["web", "db"] {
        write(
            &root.join(format!("manifests/roles/{role}.toml")),
            &format!(
                "modules = [{modules}]\n[vars]\nrole_port = 80\n\
                 workers = [{{ name = \"{role}-a\" }}, {{ name = \"{role}-b\" }}, {{ name = \"{role}-c\" }}, {{ name = \"{role}-d\" }}, {{ name = \"{role}-e\" }}]\n"
            ),
        );
    }
    let mut base = String::new();
    for i in 0..10 {
        let _ = write!(
            base,
            "[[resource]]\ntype = \"package\"\nname = \"pkg-{i}\"\n\n"
        );
        let _ = write!(
            base,
            "[[resource]]\ntype = \"directory\"\npath = \"/srv/bench/d{i}\"\nowner = \"root\"\nmode = \"0755\"\n\n"
        );
    }
    write(&root.join("modules/base/module.toml"), &base);
    let mut config = String::from("requires = [\"base\"]\n[vars]\nlimit = 100\n\n");
    for i in 0..10 {
        let _ = write!(
            config,
            "[[resource]]\ntype = \"file\"\npath = \"/etc/bench/f{i}.conf\"\ntemplate = \"f{i}.conf.hbs\"\nmode = \"0644\"\n\n"
        );
        let mut template = String::from("# bench config\n");
        for line in 0..30 {
            let _ = writeln!(
                template,
                "key_{line} = \"{{{{environment}}}}-{{{{limit}}}}-{{{{role_port}}}}-{line}\""
            );
        }
        template.push_str("{{#each workers}}worker {{name}}\n{{/each}}");
        write(
            &root.join(format!("modules/config/templates/f{i}.conf.hbs")),
            &template,
        );
    }
    write(&root.join("modules/config/module.toml"), &config);
    write(
        &root.join("modules/worker/module.toml"),
        "requires = [\"config\"]\neach = \"workers\"\nas = \"w\"\n\n\
         [[resource]]\ntype = \"user\"\nname = \"{{w.name}}\"\nsystem = true\n\n\
         [[resource]]\ntype = \"file\"\npath = \"/etc/bench/{{w.name}}.env\"\ncontent = \"NAME={{w.name}}\\nLIMIT={{limit}}\\n\"\nnotify = [\"service:{{w.name}}\"]\n\n\
         [[resource]]\ntype = \"exec\"\nname = \"daemon-reload-{{w.name}}\"\ncommand = \"systemctl daemon-reload\"\nrefresh_only = true\n\n\
         [[resource]]\ntype = \"service\"\nname = \"{{w.name}}\"\nrunning = true\nenabled = true\n",
    );
    let mut pernode = String::from("requires = [\"base\"]\n[vars]\nlimit = 100\n\n");
    for i in 0..5 {
        let _ = write!(
            pernode,
            "[[resource]]\ntype = \"directory\"\npath = \"/srv/node/d{i}\"\nmode = \"0755\"\n\n"
        );
    }
    for i in 0..25 {
        let _ = write!(
            pernode,
            "[[resource]]\ntype = \"file\"\npath = \"/etc/node/p{i}.conf\"\ntemplate = \"p{i}.conf.hbs\"\nmode = \"0644\"\n\n"
        );
        // About 150 bytes once rendered, every line naming this node.
        write(
            &root.join(format!("modules/pernode/templates/p{i}.conf.hbs")),
            &format!(
                "# p{i}: {{{{node.name}}}} in {{{{environment}}}}\n\
                 name = \"{{{{node.name}}}}\"\n\
                 listen = \"{{{{node.address}}}}:{port}\"\n\
                 peer = \"{{{{node.name}}}}.{i}.bench.internal\"\n\
                 limit = {{{{limit}}}}\n",
                port = 9000 + i
            ),
        );
    }
    write(&root.join("modules/pernode/module.toml"), &pernode);
    let mut list = String::new();
    for n in 0..nodes {
        let dc = if n % 2 == 0 { "east" } else { "west" };
        let role = if n % 4 < 2 { "web" } else { "db" };
        let address = match case {
            Case::Shared => "127.0.0.1".to_string(),
            Case::PerNode => format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255),
        };
        let _ = write!(
            list,
            "[[node]]\nname = \"n{n:06}\"\ndatacenter = \"{dc}\"\nrole = \"{role}\"\naddress = \"{address}\"\n"
        );
        // Every node has a variable of its own that no template uses (it must not cost
        // a rendering), and one node in ten overrides `limit`, which every template
        // uses, with one of three values.
        let _ = write!(list, "[node.vars]\nhost_label = \"rack-{n}\"\n");
        if n % 10 == 0 {
            let _ = writeln!(list, "limit = {}", 100 + n % 3);
        }
    }
    write(&root.join("manifests/nodes.toml"), &list);
}
