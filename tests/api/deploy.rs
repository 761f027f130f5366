//! Offline checks of the deployment files under `deploy/`: what can be
//! verified without Docker, a cluster or a reverse proxy. The YAML files
//! parse and carry the properties operations rely on (probes, non-root,
//! grace periods, health-gated start order, the Secret they name); the
//! systemd unit passes `systemd-analyze verify`; the Dockerfile's health
//! check really answers against a running `herold serve`; every `HEROLD_*`
//! variable the files set is one the README documents.
//!
//! `systemd-analyze` missing is a loud skip, and a failure under
//! `HEROLD_REQUIRE_POSTGRES=1` (CI). nginx is not installed here, so its
//! example is checked line by line rather than with `nginx -t`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_yaml::Value;

const BIN: &str = env!("CARGO_BIN_EXE_herold");

/// The bound on Herold's whole stop after SIGTERM (README:
/// HEROLD_SHUTDOWN_TIMEOUT_SECS): every supervisor must wait longer than
/// this before it kills.
const HTTP_DRAIN_SECS: u64 = 30;

/// The uid the Dockerfile gives the `herold` user.
const HEROLD_UID: u64 = 10001;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read(rel: &str) -> String {
    let path = deploy_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(rel: &str) -> Value {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("deploy/{rel} does not parse: {e}"))
}

fn yaml_documents(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("deploy/{rel} does not parse: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str().unwrap_or_else(|| panic!("{what}: expected a string, found {v:?}"))
}

/// `"90s"`, `"1m30s"`, `90` → seconds.
fn seconds(text: &str) -> u64 {
    let text = text.trim();
    if let Ok(n) = text.parse() {
        return n;
    }
    let (mut total, mut number) = (0u64, String::new());
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
        } else {
            let n: u64 = number.parse().unwrap_or_else(|_| panic!("duration '{text}'"));
            number.clear();
            total += n * match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => panic!("duration '{text}': unit {c}"),
            };
        }
    }
    assert!(number.is_empty(), "duration '{text}' has a number without unit");
    total
}

/// The variables the README's configuration table documents.
fn documented_variables() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README.md");
    let names: BTreeSet<String> = readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|name| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(str::to_owned)
        .collect();
    assert!(names.contains("HEROLD_LISTEN") && names.contains("DATABASE_URL"), "README configuration table not found");
    names
}

/// Every `HEROLD_*` / `DATABASE_URL` key a file sets is a documented one.
#[track_caller]
fn assert_documented<'a>(file: &str, keys: impl IntoIterator<Item = &'a str>) {
    let documented = documented_variables();
    for key in keys {
        if key.starts_with("HEROLD_") || key == "DATABASE_URL" {
            assert!(
                documented.contains(key),
                "{file} sets {key}, which the README's configuration table does not know"
            );
        }
    }
}

fn mapping_keys(v: &Value) -> Vec<&str> {
    v.as_mapping().map(|m| m.keys().filter_map(Value::as_str).collect()).unwrap_or_default()
}

// ------------------------------------------------------------------ compose

#[test]
fn compose_runs_herold_postgres_and_caddy_in_health_order() {
    let compose = yaml("compose.yaml");
    let services = &compose["services"];
    let names: BTreeSet<&str> = mapping_keys(services).into_iter().collect();
    assert_eq!(names, BTreeSet::from(["caddy", "herold", "postgres"]), "compose services");

    // herold: built from deploy/Dockerfile with the repository as context.
    let herold = &services["herold"];
    let context = deploy_dir().join(str_of(&herold["build"]["context"], "herold build.context"));
    let dockerfile = context.join(str_of(&herold["build"]["dockerfile"], "herold build.dockerfile"));
    assert!(dockerfile.is_file(), "compose builds from {}, which does not exist", dockerfile.display());
    assert!(context.join("Cargo.toml").is_file(), "compose build context is not the repository root");
    assert_eq!(herold["depends_on"]["postgres"]["condition"].as_str(), Some("service_healthy"));
    assert!(herold["ports"].is_null(), "herold must not publish a port: only Caddy talks to it");
    let grace = seconds(str_of(&herold["stop_grace_period"], "herold stop_grace_period"));
    assert!(grace > HTTP_DRAIN_SECS, "herold stop_grace_period {grace}s must exceed the drain");

    let env = &herold["environment"];
    assert_documented("compose.yaml", mapping_keys(env));
    let database_url = str_of(&env["DATABASE_URL"], "DATABASE_URL");
    assert!(database_url.starts_with("postgres://") && database_url.contains("@postgres:5432/"), "{database_url}");
    assert!(str_of(&env["HEROLD_PUBLIC_URL"], "HEROLD_PUBLIC_URL").starts_with("https://"));
    assert_eq!(env["HEROLD_LISTEN"].as_str(), Some("0.0.0.0:8080"));
    assert!(env["HEROLD_TRUSTED_PROXIES"].is_string(), "Caddy's X-Forwarded-For must be trusted");

    // postgres: a health check that depends_on can wait for, data in a volume.
    let postgres = &services["postgres"];
    assert!(str_of(&postgres["image"], "postgres image").starts_with("postgres:16"));
    let test = serde_yaml::to_string(&postgres["healthcheck"]["test"]).unwrap();
    assert!(test.contains("pg_isready"), "postgres healthcheck: {test}");
    let declared_volumes: BTreeSet<&str> = mapping_keys(&compose["volumes"]).into_iter().collect();
    let mounts = |service: &Value| -> Vec<String> {
        service["volumes"].as_sequence().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect()
    };
    let pg_mounts = mounts(postgres);
    let pg_data = pg_mounts
        .iter()
        .find(|m| m.ends_with(":/var/lib/postgresql/data"))
        .expect("postgres data in a volume at /var/lib/postgresql/data");
    assert!(declared_volumes.contains(pg_data.split(':').next().unwrap()), "postgres volume not declared");

    // caddy: TLS ports, the Caddyfile, certificates kept, waits for herold.
    let caddy = &services["caddy"];
    assert!(str_of(&caddy["image"], "caddy image").starts_with("caddy:2"));
    let ports = serde_yaml::to_string(&caddy["ports"]).unwrap();
    assert!(ports.contains("443:443") && ports.contains("80:80"), "caddy ports: {ports}");
    assert_eq!(caddy["depends_on"]["herold"]["condition"].as_str(), Some("service_healthy"));
    let caddy_mounts = mounts(caddy);
    assert!(caddy_mounts.iter().any(|m| m.starts_with("./Caddyfile:/etc/caddy/Caddyfile")), "{caddy_mounts:?}");
    assert!(caddy_mounts.iter().any(|m| m.ends_with(":/data")), "caddy must keep /data (certificates)");
    for mount in mounts(herold).iter().chain(&pg_mounts).chain(&caddy_mounts) {
        let source = mount.split(':').next().unwrap();
        if !source.starts_with('.') {
            assert!(declared_volumes.contains(source), "volume {source} is used but not declared");
        }
    }

    // Every ${VAR} compose substitutes is in the example .env.
    let text = read("compose.yaml");
    let example = read("compose.env.example");
    for var in text.split("${").skip(1).map(|s| s.split([':', '}', '-']).next().unwrap()) {
        assert!(
            example.lines().any(|l| l.starts_with(&format!("{var}="))),
            "${{{var}}} missing in compose.env.example"
        );
    }
}

#[test]
fn caddyfile_proxies_to_herold_with_automatic_tls_and_no_client_addresses_in_logs() {
    let caddy = read("Caddyfile");
    let code: Vec<&str> = caddy.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    let site =
        code.iter().position(|l| *l == "{$HEROLD_DOMAIN} {").expect("site address from HEROLD_DOMAIN (automatic TLS)");
    let (global, site) = code.split_at(site);
    assert!(global.contains(&"email {$ACME_EMAIL}"), "ACME contact");
    // Caddy's error lines carry the client address unless filtered out.
    for field in ["request>remote_ip delete", "request>client_ip delete"] {
        assert!(global.contains(&field), "Caddyfile log filter lacks `{field}`");
    }
    assert!(site.iter().any(|l| l.starts_with("reverse_proxy herold:8080")), "reverse_proxy to herold:8080");
    assert!(!site.iter().any(|l| l.starts_with("log")), "a site `log` directive would record residents' addresses");
    assert!(site.contains(&"respond /metrics 404"), "/metrics stays inside");

    // Where caddy is installed, it validates the file (placeholders filled in).
    let scratch = tempfile::tempdir().unwrap();
    let validate = Command::new("caddy")
        .args(["validate", "--adapter", "caddyfile", "--config"])
        .arg(deploy_dir().join("Caddyfile"))
        .env("HEROLD_DOMAIN", "herold.example-stadt.de")
        .env("ACME_EMAIL", "it@example-stadt.de")
        .env("XDG_DATA_HOME", scratch.path())
        .env("XDG_CONFIG_HOME", scratch.path())
        .output();
    match validate {
        Ok(out) => assert!(out.status.success(), "caddy validate:\n{}", String::from_utf8_lossy(&out.stderr)),
        Err(_) => eprintln!("deploy: caddy not installed — `caddy validate` SKIPPED (key lines checked)"),
    }
}

// --------------------------------------------------------------- Dockerfile

/// Instructions with continuation lines joined, comments dropped.
fn dockerfile_instructions() -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(part) = trimmed.strip_suffix('\\') {
            current.push_str(part);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, args) = current.split_once(char::is_whitespace).unwrap_or((&current, ""));
        instructions.push((keyword.to_uppercase(), args.trim().to_owned()));
        current.clear();
    }
    instructions
}

#[test]
fn dockerfile_is_multi_stage_locked_non_root_with_healthcheck() {
    let instructions = dockerfile_instructions();
    let args = |keyword: &str| -> Vec<&str> {
        instructions.iter().filter(|(k, _)| k == keyword).map(|(_, a)| a.as_str()).collect()
    };
    let froms = args("FROM");
    assert_eq!(froms.len(), 2, "two stages: {froms:?}");
    assert!(froms[0].starts_with("rust:1-bookworm AS "), "builder: {}", froms[0]);
    assert_eq!(froms[1], "debian:bookworm-slim", "runtime image");
    let builder = froms[0].rsplit(' ').next().unwrap();
    assert!(
        args("COPY").iter().any(|a| a.starts_with(&format!("--from={builder} "))),
        "binary copied from the builder"
    );
    assert!(args("RUN").iter().any(|a| a.contains("cargo build --release --locked")), "cargo build --release --locked");

    // Runtime stage: libpq5 and ca-certificates, nothing else.
    let runtime_start = instructions.iter().rposition(|(k, _)| k == "FROM").unwrap();
    let runtime = &instructions[runtime_start..];
    let installs: Vec<&str> = runtime
        .iter()
        .filter(|(k, _)| k == "RUN")
        .filter_map(|(_, a)| a.split("--no-install-recommends").nth(1))
        .flat_map(|rest| rest.split("&&").next().unwrap().split_whitespace())
        .collect();
    assert_eq!(installs, ["libpq5", "ca-certificates"], "runtime packages");

    let users = args("USER");
    let user = users.last().expect("a USER instruction");
    let uid = user.split(':').next().unwrap();
    assert!(uid != "root" && uid != "0", "runs as root: USER {user}");
    assert_eq!(uid, HEROLD_UID.to_string(), "fixed uid (Kubernetes runAsUser names it)");
    assert!(runtime.iter().any(|(k, a)| k == "RUN" && a.contains(&format!("--uid {HEROLD_UID}"))), "user created");

    let env = args("ENV").join(" ");
    assert!(env.contains("HEROLD_LISTEN=0.0.0.0:8080"), "ENV: {env}");
    assert!(env.contains("HEROLD_DATA_DIR=/var/lib/herold"), "ENV: {env}");
    assert_documented("Dockerfile", env.split_whitespace().filter_map(|kv| kv.split('=').next()));
    assert!(args("VOLUME").iter().any(|a| a.contains("/var/lib/herold")), "data volume");
    assert_eq!(args("EXPOSE"), ["8080"]);
    assert_eq!(args("ENTRYPOINT"), [r#"["/usr/local/bin/herold"]"#]);
    assert_eq!(args("CMD"), [r#"["serve"]"#]);
    let healthcheck = args("HEALTHCHECK");
    assert_eq!(healthcheck.len(), 1, "one HEALTHCHECK");
    assert!(healthcheck[0].contains("/healthz"), "HEALTHCHECK calls /healthz");

    let ignore = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".dockerignore"))
        .expect(".dockerignore at the repository root");
    for entry in ["target/", "data/", "**/node_modules", ".git"] {
        assert!(ignore.lines().any(|l| l.trim() == entry), ".dockerignore lacks {entry}");
    }
}

/// The image's HEALTHCHECK command, run as Docker would (exec form), against
/// a real `herold serve`: healthy when it serves, unhealthy when it does not.
#[test]
fn dockerfile_healthcheck_command_answers_against_a_running_herold() {
    let (_, healthcheck) = dockerfile_instructions().into_iter().find(|(k, _)| k == "HEALTHCHECK").unwrap();
    let exec_form = healthcheck.split_once("CMD ").expect("HEALTHCHECK … CMD [...]").1;
    let argv: Vec<String> = serde_json::from_str(exec_form).expect("HEALTHCHECK CMD in exec (JSON) form");
    assert_eq!(argv[0], "bash", "the runtime image has bash, not curl");
    let Some(bash) = ["/bin/bash", "/usr/bin/bash"].into_iter().find(|p| Path::new(p).exists()) else {
        panic!("bash is needed to run the HEALTHCHECK command");
    };
    let port = crate::cli::free_port();
    let script = argv[2].replace("/8080", &format!("/{port}"));
    assert_ne!(script, argv[2], "the health check must name port 8080 (the image's HEROLD_LISTEN)");
    let check = || {
        Command::new(bash)
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run bash")
            .success()
    };
    assert!(!check(), "health check passes with nothing listening on {port}");

    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(BIN)
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env_remove("HEROLD_CONFIG")
        .env("HEROLD_DATA_DIR", dir.path())
        .env("HEROLD_LISTEN", format!("127.0.0.1:{port}"))
        .env("HEROLD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start herold serve");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("herold serve exited with {status}");
        }
        assert!(Instant::now() < deadline, "HEALTHCHECK command never passed against herold serve on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// --------------------------------------------------------------- Kubernetes

fn kubernetes_objects() -> Vec<Value> {
    let kustomization = yaml("kubernetes/kustomization.yaml");
    assert_eq!(kustomization["kind"].as_str(), Some("Kustomization"));
    assert!(kustomization["namespace"].is_null(), "manifests stay namespace-free");
    let resources: Vec<&str> = kustomization["resources"]
        .as_sequence()
        .expect("kustomization resources")
        .iter()
        .map(|r| str_of(r, "resource"))
        .collect();
    let mut objects = Vec::new();
    for resource in resources {
        for object in yaml_documents(&format!("kubernetes/{resource}")) {
            assert!(object["metadata"]["namespace"].is_null(), "{resource} sets a namespace");
            objects.push(object);
        }
    }
    objects
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects.iter().find(|o| o["kind"].as_str() == Some(kind)).unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn kubernetes_deployment_probes_secret_and_security_context() {
    let objects = kubernetes_objects();
    let deployment = find(&objects, "Deployment");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"].as_u64(), Some(2));
    let pod = &spec["template"]["spec"];
    let pod_labels = &spec["template"]["metadata"]["labels"];
    for (k, v) in spec["selector"]["matchLabels"].as_mapping().expect("selector") {
        assert_eq!(&pod_labels[k], v, "selector does not match the pod labels");
    }

    let grace = pod["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
    assert!(grace > HTTP_DRAIN_SECS, "terminationGracePeriodSeconds {grace} must exceed the drain");

    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(HEROLD_UID), "the image's uid");

    let containers = pod["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(serde_yaml::to_string(&security["capabilities"]["drop"]).unwrap().trim(), "- ALL");
    let mounts = serde_yaml::to_string(&container["volumeMounts"]).unwrap();
    assert!(mounts.contains("mountPath: /tmp"), "a writable /tmp beside the read-only root");

    // Probes on 8080 (a named port must resolve to containerPort 8080).
    let port_of = |port: &Value| -> u64 {
        port.as_u64().unwrap_or_else(|| {
            let name = str_of(port, "probe port");
            container["ports"]
                .as_sequence()
                .into_iter()
                .flatten()
                .find(|p| p["name"].as_str() == Some(name))
                .and_then(|p| p["containerPort"].as_u64())
                .unwrap_or_else(|| panic!("port '{name}' is not a container port"))
        })
    };
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(port_of(&get["port"]), 8080, "{probe} port");
    }
    assert!(
        container["ports"].as_sequence().unwrap().iter().any(|p| p["containerPort"].as_u64() == Some(8080)),
        "containerPort 8080"
    );

    // DATABASE_URL from the Secret the example defines; the rest from the ConfigMap.
    let env = container["env"].as_sequence().expect("env");
    let database_url = env.iter().find(|e| e["name"].as_str() == Some("DATABASE_URL")).expect("DATABASE_URL env");
    let secret_ref = &database_url["valueFrom"]["secretKeyRef"];
    let secret_example = yaml("kubernetes/secret.example.yaml");
    assert_eq!(secret_example["kind"].as_str(), Some("Secret"));
    assert_eq!(secret_ref["name"], secret_example["metadata"]["name"], "Deployment names another Secret");
    let key = str_of(&secret_ref["key"], "secretKeyRef.key");
    let placeholder = str_of(&secret_example["stringData"][key], "Secret example value");
    assert!(placeholder.contains("CHANGE-ME"), "the example Secret holds a marked placeholder");
    assert!(read("kubernetes/secret.example.yaml").contains("EXAMPLE ONLY"), "example Secret is marked");
    assert_documented("deployment.yaml", env.iter().filter_map(|e| e["name"].as_str()));

    let config_map = find(&objects, "ConfigMap");
    let env_from = serde_yaml::to_string(&container["envFrom"]).unwrap();
    assert!(env_from.contains(&format!("name: {}", str_of(&config_map["metadata"]["name"], "ConfigMap name"))));
    assert_documented("configmap.yaml", mapping_keys(&config_map["data"]));
    assert!(str_of(&config_map["data"]["HEROLD_PUBLIC_URL"], "HEROLD_PUBLIC_URL").starts_with("https://"));
    assert_eq!(config_map["data"]["HEROLD_LISTEN"].as_str(), Some("0.0.0.0:8080"));

    // Service → pods, Ingress → Service.
    let service = find(&objects, "Service");
    for (k, v) in service["spec"]["selector"].as_mapping().expect("service selector") {
        assert_eq!(&pod_labels[k], v, "Service selects no pod");
    }
    let service_port = &service["spec"]["ports"][0];
    assert_eq!(port_of(&service_port["targetPort"]), 8080, "Service targetPort");
    let ingress = find(&objects, "Ingress");
    let backend = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
    assert_eq!(backend["name"], service["metadata"]["name"]);
    assert_eq!(backend["port"]["name"], service_port["name"]);
}

/// `kubectl kustomize` builds the set offline, where kubectl is installed.
#[test]
fn kubernetes_kustomization_builds() {
    let Ok(output) = Command::new("kubectl").args(["kustomize"]).arg(deploy_dir().join("kubernetes")).output() else {
        eprintln!(
            "deploy: kubectl not installed — `kubectl kustomize deploy/kubernetes` SKIPPED (YAML checked by parsing)"
        );
        return;
    };
    assert!(output.status.success(), "kubectl kustomize failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let built = String::from_utf8(output.stdout).unwrap();
    let kinds: BTreeSet<String> = built.lines().filter_map(|l| l.strip_prefix("kind: ")).map(str::to_owned).collect();
    for kind in ["ConfigMap", "Deployment", "Service", "Ingress"] {
        assert!(kinds.contains(kind), "kustomize output lacks a {kind}: {kinds:?}");
    }
    assert!(!kinds.contains("Secret"), "the example Secret must not be applied by `kubectl apply -k`");
}

// ------------------------------------------------------------------ systemd

/// `(key, value)` of the unit's assignments, comments dropped.
fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn systemd_unit_is_hardened() {
    let settings = unit_settings(&read("herold.service"));
    let get = |key: &str| -> Vec<&str> { settings.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect() };
    for (key, value) in [
        ("User", "herold"),
        ("StateDirectory", "herold"),
        ("WorkingDirectory", "/var/lib/herold"),
        ("EnvironmentFile", "/etc/herold/herold.env"),
        ("ExecStart", "/usr/local/bin/herold serve"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallFilter", "@system-service"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
    ] {
        assert!(get(key).contains(&value), "herold.service: {key}={value} missing (has {:?})", get(key));
    }
    let stop = seconds(get("TimeoutStopSec").first().expect("TimeoutStopSec"));
    assert!(stop > HTTP_DRAIN_SECS, "TimeoutStopSec {stop}s must exceed the drain");
    let environment = get("Environment").into_iter().filter_map(|kv| kv.split('=').next());
    assert_documented("herold.service", environment);

    let example = unit_settings(&read("herold.env.example"));
    assert_documented("herold.env.example", example.iter().map(|(k, _)| k.as_str()));
    let commented: String = read("herold.env.example");
    assert!(example.iter().any(|(k, _)| k == "HEROLD_PUBLIC_URL"), "env example sets HEROLD_PUBLIC_URL");
    assert!(commented.contains("#DATABASE_URL=postgres://"), "env example shows DATABASE_URL for PostgreSQL");
}

fn systemd_analyze() -> Option<&'static str> {
    let found = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].into_iter().find(|p| Path::new(p).exists());
    if found.is_none() {
        if std::env::var("HEROLD_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
            panic!("systemd-analyze is not installed, and CI (HEROLD_REQUIRE_POSTGRES=1) requires the unit check");
        }
        eprintln!("deploy: systemd-analyze not installed — `systemd-analyze verify deploy/herold.service` SKIPPED");
    }
    found
}

/// A copy of the unit whose ExecStart is the binary under test (verify
/// insists that the executable exists).
fn unit_for_verify(dir: &Path) -> PathBuf {
    let unit = read("herold.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/herold "), "ExecStart path");
    let patched = unit.replace("ExecStart=/usr/local/bin/herold ", &format!("ExecStart={BIN} "));
    let path = dir.join("herold.service");
    std::fs::write(&path, patched).unwrap();
    path
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let Some(analyze) = systemd_analyze() else { return };
    assert!(!BIN.contains(char::is_whitespace), "ExecStart cannot take {BIN} unquoted");
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_verify(dir.path());
    let output = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&unit)
        .current_dir(dir.path())
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze verify");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "systemd-analyze verify failed:\n{said}");
    // It reports unknown keys, bad values and the like as warnings with exit 0.
    assert!(said.trim().is_empty(), "systemd-analyze verify warns about deploy/herold.service:\n{said}");

    // The hardening score (0 = locked down, 10 = exposed), offline on the file.
    let security = Command::new(analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .current_dir(dir.path())
        .output()
        .expect("run systemd-analyze security");
    let text = String::from_utf8_lossy(&security.stdout);
    if let Some(line) = text.lines().find(|l| l.contains("Overall exposure level")) {
        let score: f64 = line
            .split(':')
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("exposure line: {line}"));
        eprintln!("deploy: systemd-analyze security: exposure {score} for deploy/herold.service");
        assert!(score <= 2.0, "herold.service exposure {score} > 2.0:\n{text}");
    } else {
        eprintln!(
            "deploy: `systemd-analyze security --offline` gave no score (older systemd?) — skipped:\n{}",
            String::from_utf8_lossy(&security.stderr)
        );
    }
}

// -------------------------------------------------------------------- nginx

#[test]
fn nginx_example_has_tls_http2_proxy_headers_body_limit_and_no_client_addresses_in_logs() {
    let conf = read("nginx.conf");
    let code: Vec<&str> = conf.lines().map(str::trim).filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    let has = |needle: &str| code.iter().any(|l| *l == needle);
    for line in [
        "listen 443 ssl http2;",
        "server 127.0.0.1:8080;",
        "proxy_pass http://herold;",
        "proxy_set_header Host $host;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "client_max_body_size 64k;",
        "return 301 https://$host$request_uri;",
    ] {
        assert!(has(line), "nginx.conf lacks `{line}`");
    }
    assert!(code.iter().any(|l| l.starts_with("ssl_certificate ")), "nginx.conf: no certificate");
    // Photos of residents' reports (up to 10 MiB) get through on their route only.
    let photos = code
        .iter()
        .position(|l| *l == "location ~ ^/api/v1/devices/me/issues/[^/]+/photos$ {")
        .expect("nginx.conf: no location for photo uploads");
    let block: Vec<&str> = code[photos..].iter().take_while(|l| **l != "}").copied().collect();
    assert!(block.contains(&"client_max_body_size 10m;"), "photo uploads limited below 10 MiB: {block:?}");
    assert!(
        block.contains(&"proxy_set_header X-Forwarded-For $remote_addr;"),
        "photo uploads lose the client: {block:?}"
    );
    // Herold's body limit (README: HEROLD_MAX_BODY_BYTES, 65536) = 64k.
    assert!(documented_variables().contains("HEROLD_MAX_BODY_BYTES"));
    // Access logs: only the address-free format, error log at crit.
    let log_format_start = code.iter().position(|l| l.starts_with("log_format herold_noip")).expect("log_format");
    let log_format: String =
        code[log_format_start..].iter().take_while(|l| !l.starts_with("upstream")).copied().collect();
    assert!(!log_format.contains("remote_addr") && !log_format.contains("forwarded_for"), "{log_format}");
    for line in code.iter().filter(|l| l.starts_with("access_log ")) {
        assert!(*line == "access_log off;" || line.ends_with(" herold_noip;"), "access log with addresses: {line}");
    }
    assert!(code.iter().any(|l| l.starts_with("error_log ") && l.ends_with(" crit;")), "error log names clients");
    // /metrics is not for the internet.
    let metrics = code.iter().position(|l| *l == "location = /metrics {").expect("location = /metrics");
    let block: Vec<&str> = code[metrics..].iter().take_while(|l| **l != "}").copied().collect();
    assert!(block.contains(&"deny all;"), "/metrics open to everyone: {block:?}");
}
