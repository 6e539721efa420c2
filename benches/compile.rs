//! Catalog compilation at fleet scale: builds a synthetic site in a temporary directory
//! (two datacenters, two roles, 50 resources per node: plain resources, rendered
//! files, and an `each` module), compiles every node's catalog, checks parity, and
//! prints the time of each phase and the peak resident memory (VmHWM).
//!
//! `cargo bench --bench compile -- 1000 5000 10000` runs each size in its own process
//! so that every peak is that size's own.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use tandem::catalog::{parity, Compiler};
use tandem::manifest::Site;

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    match sizes.as_slice() {
        [] => run_each(&[1_000, 5_000, 10_000]),
        [one] => run(*one),
        many => run_each(many),
    }
}

fn run_each(sizes: &[usize]) {
    let exe = std::env::current_exe().expect("own executable");
    for size in sizes {
        let status = std::process::Command::new(&exe)
            .arg(size.to_string())
            .status()
            .expect("run one size");
        assert!(status.success(), "size {size} failed");
    }
}

fn run(nodes: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    write_site(dir.path(), nodes);
    let start = Instant::now();
    let site = Site::load(dir.path()).expect("load");
    let loaded = start.elapsed();
    let compiler = Compiler::new(&site).expect("compiler");
    let t = Instant::now();
    let catalogs: Vec<_> = site
        .nodes
        .iter()
        .map(|node| compiler.compile(node).expect("compile"))
        .collect();
    let compiled = t.elapsed();
    let t = Instant::now();
    let parity = parity::check(&compiler, &site.nodes, &catalogs);
    assert!(
        parity.errors.is_empty() && parity.failures.is_empty(),
        "{parity:?}"
    );
    let resources: usize = catalogs.iter().map(|c| c.resources.len()).sum();
    println!(
        "nodes {nodes:>6}  resources {resources:>7}  load {:>6.2}s  compile {:>6.2}s  parity {:>5.3}s  total {:>6.2}s  cpu {:>6.2}s  peak RSS {:>6} MiB",
        loaded.as_secs_f64(),
        compiled.as_secs_f64(),
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

/// 20 plain resources (module `base`), 10 rendered files (module `config`), and
/// 5 instances of a 4-resource `each` module (`worker`): 50 per node.
fn write_site(root: &Path, nodes: usize) {
    write(
        &root.join("manifests/site.toml"),
        "[site]\nname = \"bench\"\n[vars]\nenvironment = \"bench\"\n\
         [datacenters.east]\nprimary = true\nprovider = \"static\"\n\
         [datacenters.west]\nprovider = \"static\"\n",
    );
    for role in ["web", "db"] {
        write(
            &root.join(format!("manifests/roles/{role}.toml")),
            &format!(
                "modules = [\"base\", \"config\", \"worker\"]\n[vars]\nrole_port = 80\n\
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
    let mut list = String::new();
    for n in 0..nodes {
        let dc = if n % 2 == 0 { "east" } else { "west" };
        let role = if n % 4 < 2 { "web" } else { "db" };
        let _ = write!(
            list,
            "[[node]]\nname = \"n{n:06}\"\ndatacenter = \"{dc}\"\nrole = \"{role}\"\naddress = \"127.0.0.1\"\n"
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
