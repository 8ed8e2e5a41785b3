//! The deployment files (engineering.md "Deployment files", docs/deployment.md): the Helm
//! chart rendered by a small renderer of exactly the template subset it may use, the
//! Kustomize overlays rendered by `kubectl kustomize`, both validated with
//! `kubernetes-validate --strict` and `yamllint`; the Dockerfile linted with `hadolint`;
//! the compose file's order and probes; the chart's `lexecon.toml` accepted by the real
//! configuration loader.
//!
//! The linters come from `.ci/install-deploy-lint` (or `LEXECON_TEST_DEPLOY_LINT`, a
//! directory holding the three); `kubectl` from the PATH. Outside CI a missing tool skips
//! its step with a note; under CI it fails the test. Nothing here runs Docker, Helm or a
//! cluster.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use lexecon_e2e::*;
use yaml_rust2::{Yaml, YamlLoader};

/// The release name the chart is rendered with.
const RELEASE: &str = "lexecon";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

/// The bin directory of the deployment linters (`yamllint`, `kubernetes-validate`,
/// `hadolint`), installed once per test binary: the install script replaces a broken
/// environment, so two tests must not run it at once.
fn lint_bin() -> Option<PathBuf> {
    static BIN: OnceLock<Option<PathBuf>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(dir) = std::env::var_os("LEXECON_TEST_DEPLOY_LINT") {
            return Some(PathBuf::from(dir));
        }
        crate::common::install("install-deploy-lint")
    })
    .clone()
}

/// `kubectl` from the PATH; `None` with a note outside CI, a failure under CI.
fn kubectl() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("kubectl"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl is missing; CI renders the Kustomize overlays with `kubectl kustomize`"
        );
        eprintln!("note: kubectl not found; skipping the Kustomize step");
    }
    found
}

/// Runs `program args` and fails the test with its output unless it exits 0.
fn run_ok(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{stdout}\n{}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `kubernetes-validate --strict` (unknown fields are errors) and `yamllint` with
/// deploy/.yamllint over `manifests`, written to a file named `name`.
fn validate(bin: &Path, name: &str, manifests: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, manifests).unwrap();
    let file = file.to_str().unwrap();
    let out = run_ok(&bin.join("kubernetes-validate"), &["--strict", file]);
    assert!(!out.contains("ERROR"), "{out}");
    let config = deploy().join(".yamllint");
    run_ok(
        &bin.join("yamllint"),
        &["--strict", "-c", config.to_str().unwrap(), file],
    );
}

// ---------------------------------------------------------------------------------------
// The Helm subset renderer.

/// One piece of a parsed template.
#[derive(Debug)]
enum Piece {
    Text(String),
    /// `{{ .Values.a.b }}` (the path after `.Values.`) or `{{ .Release.Name }}` (`None`).
    Value(Option<String>, usize),
    /// `{{- if .Values.a.b }}`.
    If(String, usize),
    /// `{{- end }}`.
    End(usize),
}

/// The path after `.Values.` when `expr` is `.Values.` and dot-separated identifiers.
fn values_path(expr: &str) -> Option<&str> {
    let path = expr.strip_prefix(".Values.")?;
    let ident =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    path.split('.').all(ident).then_some(path)
}

/// Splits `template` into pieces. Exactly these actions are accepted: `{{ .Values.PATH }}`,
/// `{{ .Release.Name }}`, `{{- if .Values.PATH }}` and `{{- end }}`; `{{-` trims the
/// white space before it, as Go templates do. Anything else is an error naming the line.
fn parse(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    let line_of = |rest: &str| {
        template[..template.len() - rest.len()]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    };
    while let Some(start) = rest.find("{{") {
        let line = line_of(&rest[start..]);
        let text = &rest[..start];
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("line {line}: `{{{{` without `}}}}`"))?;
        let action = &after[..end];
        rest = &after[end + 2..];
        let mut text = text.to_owned();
        let piece = if let Some(inner) = action.strip_prefix("- ") {
            // `{{-` trims the preceding white space, newlines included.
            text.truncate(text.trim_end().len());
            match inner.strip_suffix(' ') {
                Some("end") => Piece::End(line),
                Some(cond) => match cond.strip_prefix("if ").and_then(values_path) {
                    Some(path) => Piece::If(path.to_owned(), line),
                    None => return Err(refused(line, action)),
                },
                None => return Err(refused(line, action)),
            }
        } else {
            match action.strip_prefix(' ').and_then(|a| a.strip_suffix(' ')) {
                Some(".Release.Name") => Piece::Value(None, line),
                Some(expr) => match values_path(expr) {
                    Some(path) => Piece::Value(Some(path.to_owned()), line),
                    None => return Err(refused(line, action)),
                },
                None => return Err(refused(line, action)),
            }
        };
        pieces.push(Piece::Text(text));
        pieces.push(piece);
    }
    if rest.contains("}}") {
        let line = line_of(&rest[rest.find("}}").unwrap_or(0)..]);
        return Err(format!("line {line}: `}}}}` without `{{{{`"));
    }
    pieces.push(Piece::Text(rest.to_owned()));
    Ok(pieces)
}

fn refused(line: usize, action: &str) -> String {
    format!(
        "line {line}: `{{{{{action}}}}}` is outside the chart's template subset: only \
         `{{{{ .Values.PATH }}}}`, `{{{{ .Release.Name }}}}`, `{{{{- if .Values.PATH }}}}` \
         and `{{{{- end }}}}` (engineering.md \"Deployment files\")"
    )
}

/// The value at `path` (dot-separated) in `values`.
fn lookup<'a>(values: &'a Yaml, path: &str, line: usize) -> Result<&'a Yaml, String> {
    let mut at = values;
    for key in path.split('.') {
        at = match at {
            Yaml::Hash(map) => map.get(&Yaml::String(key.to_owned())),
            _ => None,
        }
        .ok_or_else(|| format!("line {line}: `.Values.{path}` is not set in values.yaml"))?;
    }
    Ok(at)
}

/// Go template truth: false, 0, "", null and empty collections are false.
fn truthy(value: &Yaml) -> bool {
    match value {
        Yaml::Boolean(b) => *b,
        Yaml::Integer(i) => *i != 0,
        Yaml::Real(r) => r.parse::<f64>().is_ok_and(|f| f != 0.0),
        Yaml::String(s) => !s.is_empty(),
        Yaml::Array(a) => !a.is_empty(),
        Yaml::Hash(h) => !h.is_empty(),
        Yaml::Null | Yaml::BadValue | Yaml::Alias(_) => false,
    }
}

/// A scalar as Helm prints it; what Helm would print differently from YAML is refused.
fn scalar(value: &Yaml, path: &str, line: usize) -> Result<String, String> {
    match value {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Boolean(b) => Ok(b.to_string()),
        // Helm reads numbers as float64 and prints 1000000 as 1e+06.
        Yaml::Integer(i) if i.abs() < 1_000_000 => Ok(i.to_string()),
        _ => Err(format!(
            "line {line}: `.Values.{path}` is {value:?}; the templates print only strings, \
             booleans and integers below 1000000 (quote anything else in values.yaml)"
        )),
    }
}

/// Renders `template` with `values` and the release name `release`.
fn render(template: &str, values: &Yaml, release: &str) -> Result<String, String> {
    let mut out = String::new();
    // Whether each open `if` (and everything around it) is being written.
    let mut open: Vec<bool> = Vec::new();
    let writing = |open: &[bool]| open.iter().all(|on| *on);
    for piece in parse(template)? {
        match piece {
            Piece::Text(text) => {
                if writing(&open) {
                    out.push_str(&text);
                }
            }
            Piece::Value(path, line) => {
                // Looked up even in a branch not taken: every value named must be set.
                let text = match &path {
                    None => release.to_owned(),
                    Some(path) => scalar(lookup(values, path, line)?, path, line)?,
                };
                if writing(&open) {
                    out.push_str(&text);
                }
            }
            Piece::If(path, line) => open.push(truthy(lookup(values, &path, line)?)),
            Piece::End(line) => {
                open.pop()
                    .ok_or_else(|| format!("line {line}: `{{{{- end }}}}` without `if`"))?;
            }
        }
    }
    if !open.is_empty() {
        return Err(format!("{} `if` without `{{{{- end }}}}`", open.len()));
    }
    Ok(out)
}

fn chart() -> PathBuf {
    deploy().join("helm/lexecon")
}

fn chart_values() -> Yaml {
    let text = std::fs::read_to_string(chart().join("values.yaml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

/// Every template of the chart rendered with `values`, as one multi-document stream
/// (`helm template`'s shape); a template that renders to nothing is left out.
fn render_chart(values: &Yaml) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart().join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut out = String::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.ends_with(".yaml"),
            "{name}: the chart's templates are YAML files only"
        );
        let text = std::fs::read_to_string(&file).unwrap();
        let doc = render(&text, values, RELEASE).unwrap_or_else(|e| panic!("{name}: {e}"));
        if !doc.trim().is_empty() {
            out.push_str(&format!(
                "---\n# Source: lexecon/templates/{name}\n{}\n",
                doc.trim_matches('\n')
            ));
        }
    }
    out
}

/// `values` with `path` (dot-separated) set to `to`.
fn with_value(mut values: Yaml, path: &str, to: Yaml) -> Yaml {
    let mut at = &mut values;
    for key in path.split('.') {
        let Yaml::Hash(map) = at else {
            panic!("{path}: not a map on the way");
        };
        at = map.get_mut(&Yaml::String(key.to_owned())).unwrap();
    }
    *at = to;
    values
}

#[test]
fn the_renderer_refuses_anything_outside_the_subset() {
    let values = YamlLoader::load_from_str("a: x\nmap: {k: v}\nbig: 1000000\nnone:\n")
        .unwrap()
        .remove(0);
    for (template, needle) in [
        (
            "{{ include \"lexecon.labels\" . }}",
            "outside the chart's template subset",
        ),
        ("{{ .Chart.Name }}", "outside the chart's template subset"),
        (
            "{{ .Release.Namespace }}",
            "outside the chart's template subset",
        ),
        (
            "{{ .Values.a | quote }}",
            "outside the chart's template subset",
        ),
        (
            "{{ toYaml .Values.map }}",
            "outside the chart's template subset",
        ),
        ("{{- .Values.a }}", "outside the chart's template subset"),
        ("{{ .Values.a -}}", "outside the chart's template subset"),
        (
            "{{ if .Values.a }}x{{- end }}",
            "outside the chart's template subset",
        ),
        (
            "{{- if .Values.a }}x{{- else }}y{{- end }}",
            "outside the chart's template subset",
        ),
        (
            "{{- if not .Values.a }}x{{- end }}",
            "outside the chart's template subset",
        ),
        ("{{/* a comment */}}", "outside the chart's template subset"),
        ("{{ .Values.a", "without `}}`"),
        ("x }}", "without `{{`"),
        ("{{ .Values.b }}", "`.Values.b` is not set"),
        (
            "{{- if .Values.a.b }}{{- end }}",
            "`.Values.a.b` is not set",
        ),
        ("{{ .Values.map }}", "print only strings"),
        ("{{ .Values.big }}", "print only strings"),
        ("{{ .Values.none }}", "print only strings"),
        ("{{- if .Values.a }}x", "without `{{- end }}`"),
        ("x\n{{- end }}", "line 2: `{{- end }}` without `if`"),
        // A value in a branch not taken must still be set.
        (
            "{{- if .Values.none }}{{ .Values.c }}{{- end }}",
            "`.Values.c` is not set",
        ),
    ] {
        let err = render(template, &values, RELEASE).unwrap_err();
        assert!(err.contains(needle), "{template}: {err}");
    }
}

#[test]
fn the_renderer_substitutes_trims_and_branches_like_helm() {
    let values = YamlLoader::load_from_str(
        "name: web\nn: 3\non: true\noff: false\nempty: \"\"\nnested: {deep: {x: 1}}\n",
    )
    .unwrap()
    .remove(0);
    for (template, want) in [
        (
            "name: {{ .Values.name }}-{{ .Release.Name }}",
            "name: web-lexecon",
        ),
        ("n: {{ .Values.n }} on: {{ .Values.on }}", "n: 3 on: true"),
        (
            "a:\n  {{- if .Values.on }}\n  b: 1\n  {{- end }}\nc: 2",
            "a:\n  b: 1\nc: 2",
        ),
        (
            "a:\n  {{- if .Values.off }}\n  b: 1\n  {{- end }}\nc: 2",
            "a:\nc: 2",
        ),
        (
            "a:\n  {{- if .Values.empty }}\n  b: 1\n  {{- end }}\nc: 2",
            "a:\nc: 2",
        ),
        (
            "{{- if .Values.on }}\nx\n{{- if .Values.off }}\ny\n{{- end }}\nz\n{{- end }}",
            "\nx\nz",
        ),
        ("d: {{ .Values.nested.deep.x }}", "d: 1"),
    ] {
        assert_eq!(
            render(template, &values, RELEASE).unwrap(),
            want,
            "{template}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The chart, the overlays, the compose file and the Dockerfile.

#[test]
fn the_helm_chart_renders_with_its_values_and_validates() {
    let values = chart_values();
    let rendered = render_chart(&values);
    for needle in [
        "kind: Deployment",
        "replicas: 3",
        "kind: PodDisruptionBudget",
        "minAvailable: 2",
        "kind: Service",
        "kind: ConfigMap",
        "helm.sh/hook: pre-install,pre-upgrade",
        "args: [\"migrate\", \"--data-dir\", \"/var/lib/lexecon\", \"--json\"]",
        "path: /readyz",
        "path: /healthz",
        "port: metrics",
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "name: LEXECON_SERVER__TLS_CERT_FILE",
        "secretName: lexecon-tls",
        "name: LEXECON_MASTER_KEY",
        "image: \"lexecon:0.1.0\"",
    ] {
        assert!(rendered.contains(needle), "{needle} missing:\n{rendered}");
    }
    assert!(
        !rendered.contains("LEXECON_REDIS__URL"),
        "redis is off by default"
    );
    assert!(
        !rendered.contains("TLS_CLIENT_CA_FILE"),
        "mTLS is off by default"
    );

    // mTLS on top of TLS: the client CA is mounted and named.
    let mutual = with_value(
        values.clone(),
        "tls.clientCaSecretName",
        Yaml::String("lexecon-client-ca".into()),
    );
    let mutual = render_chart(&mutual);
    assert!(
        mutual.contains("name: LEXECON_SERVER__TLS_CLIENT_CA_FILE")
            && mutual.contains("/etc/lexecon/client-ca/ca.crt")
            && mutual.contains("secretName: lexecon-client-ca"),
        "{mutual}"
    );

    // Every branch the other way round: no TLS, no hook job, Redis on, and a client CA
    // that must be ignored without TLS (the server refuses a client CA alone).
    let flipped = [
        ("tls.enabled", Yaml::Boolean(false)),
        ("migrate.enabled", Yaml::Boolean(false)),
        ("redis.existingSecret", Yaml::String("lexecon-redis".into())),
        (
            "tls.clientCaSecretName",
            Yaml::String("lexecon-client-ca".into()),
        ),
    ]
    .into_iter()
    .fold(values, |v, (path, to)| with_value(v, path, to));
    let other = render_chart(&flipped);
    assert!(
        !other.contains("TLS_CERT_FILE") && !other.contains("kind: Job"),
        "{other}"
    );
    assert!(other.contains("name: LEXECON_REDIS__URL"), "{other}");
    assert!(
        !other.contains("TLS_CLIENT_CA_FILE") && !other.contains("client-ca"),
        "a client CA without TLS would stop the server: {other}"
    );

    let Some(bin) = lint_bin() else {
        return;
    };
    validate(&bin, "chart.yaml", &rendered);
    validate(&bin, "chart-flipped.yaml", &other);
    validate(&bin, "chart-mutual.yaml", &mutual);
}

/// The `lexecon.toml` of the chart's ConfigMap, as rendered.
fn chart_config_toml() -> String {
    let rendered = render(
        &std::fs::read_to_string(chart().join("templates/configmap.yaml")).unwrap(),
        &chart_values(),
        RELEASE,
    )
    .unwrap();
    let doc = YamlLoader::load_from_str(&rendered).unwrap().remove(0);
    doc["data"]["lexecon.toml"].as_str().unwrap().to_owned()
}

#[test]
fn the_configuration_files_are_accepted_by_lexecon() {
    // Unknown keys and bad values stop lexecon with the key's name (configuration.md):
    // the chart's and the Kustomize base's lexecon.toml load, migrating a scratch SQLite.
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(deploy().join("k8s/base/lexecon.toml")).unwrap();
    for (name, text) in [("chart.toml", chart_config_toml()), ("base.toml", base)] {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let db = format!(
            "sqlite://{}",
            dir.path().join(format!("{name}.db")).display()
        );
        let run = lexecon_env(
            dir.path(),
            &[
                "migrate",
                "--data-dir",
                "data",
                "--config",
                file.to_str().unwrap(),
                "--json",
            ],
            &[("LEXECON_DATABASE__URL", &db)],
        );
        assert_eq!(run.code, 0, "{name}: {run:?}");
        assert!(run.stdout.contains("\"migrated\":true"), "{name}: {run:?}");
    }
    // The base's policy is the starter policy `lexecon init` writes.
    let policy = deploy().join("k8s/base/policy.toml");
    let starter = root().join("crates/lexecon-policy/src/starter_policy.toml");
    assert_eq!(
        std::fs::read_to_string(&policy).unwrap(),
        std::fs::read_to_string(starter).unwrap(),
        "deploy/k8s/base/policy.toml is a copy of the starter policy"
    );
    let check = lexecon(&root(), &["policy", "check", policy.to_str().unwrap()]);
    assert_eq!(check.code, 0, "{check:?}");
}

/// A plain HTTP/1.0 GET on `addr`; the status line.
fn http_status(addr: std::net::SocketAddr, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn a_pod_data_directory_with_only_the_node_key_serves_and_stays_as_it_is() {
    // What the manifests give a pod: `--config` (the chart's ConfigMap), the database,
    // policy and master key from elsewhere, and a data directory holding only the node
    // key the init container copied. The server must serve without initialising it
    // (which would make a key of its own).
    let dir = tempfile::tempdir().unwrap();
    let made = lexecon(dir.path(), &["init", "--data-dir", "made"]);
    assert_eq!(made.code, 0, "{made:?}");
    let made = dir.path().join("made");
    let key = dir.path().join("pod/keys/node.ed25519");
    std::fs::create_dir_all(key.parent().unwrap()).unwrap();
    std::fs::copy(made.join("keys/node.ed25519"), &key).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let config = dir.path().join("lexecon.toml");
    std::fs::write(&config, chart_config_toml()).unwrap();
    let db = format!("sqlite://{}", made.join("lexecon.db").display());
    let policy = made.join("policy.toml").display().to_string();
    let mut env = vec![
        ("LEXECON_DATABASE__URL", db),
        ("LEXECON_POLICY__FILE", policy),
    ];
    // The master key as the manifests pass it, where `init` made one.
    if let Ok(bytes) = std::fs::read(made.join("master.key")) {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        env.push(("LEXECON_MASTER_KEY", encoded));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = config.to_str().unwrap();
    let server = Server::spawn(
        dir.path(),
        &[
            "server",
            "--data-dir",
            "pod",
            "--config",
            config,
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &env,
    );
    let ready = http_status(server.metrics, "/readyz");
    assert!(ready.contains(" 200 "), "{ready}\n{}", server.log());
    assert!(http_status(server.metrics, "/healthz").contains(" 200 "));
    server.signal("TERM");
    assert_eq!(server.wait(std::time::Duration::from_secs(30)), 0);
    let mut left: Vec<String> = Vec::new();
    let mut todo = vec![dir.path().join("pod")];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                left.push(path.strip_prefix(dir.path()).unwrap().display().to_string());
            }
        }
    }
    assert_eq!(
        left,
        ["pod/keys/node.ed25519"],
        "the server wrote into the pod's data directory"
    );
}

#[test]
fn the_kustomize_overlays_render_and_validate() {
    let Some(kubectl) = kubectl() else {
        return;
    };
    let bin = lint_bin();
    let overlays = deploy().join("k8s/overlays");
    let mut names: Vec<String> = std::fs::read_dir(&overlays)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.contains(&"production".to_owned()), "{names:?}");
    for name in std::iter::once("base".to_owned()).chain(names) {
        let dir = if name == "base" {
            deploy().join("k8s/base")
        } else {
            overlays.join(&name)
        };
        let rendered = run_ok(&kubectl, &["kustomize", dir.to_str().unwrap()]);
        for needle in [
            "kind: Deployment",
            "kind: PodDisruptionBudget",
            "kind: Job",
            "path: /readyz",
            "path: /healthz",
            "secretName: lexecon-tls",
            "readOnlyRootFilesystem: true",
        ] {
            assert!(
                rendered.contains(needle),
                "{name}: {needle} missing:\n{rendered}"
            );
        }
        if name == "production" {
            assert!(rendered.contains("replicas: 3"), "{rendered}");
            assert!(rendered.contains("minAvailable: 2"), "{rendered}");
        }
        if let Some(bin) = &bin {
            validate(bin, &format!("{name}.yaml"), &rendered);
        }
    }
}

#[test]
fn the_deploy_yaml_passes_yamllint() {
    let Some(bin) = lint_bin() else {
        return;
    };
    // The chart's templates are not YAML until rendered (.yamllint ignores them; the
    // chart test lints their output).
    let config = deploy().join(".yamllint");
    run_ok(
        &bin.join("yamllint"),
        &["--strict", "-c", config.to_str().unwrap(), "deploy"],
    );
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let Some(bin) = lint_bin() else {
        return;
    };
    run_ok(&bin.join("hadolint"), &["Dockerfile"]);
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    for needle in [
        "cargo build --release --locked -p lexecon-cli",
        "USER 65532:65532",
        "EXPOSE 50051 9464",
        "VOLUME [\"/var/lib/lexecon\"]",
    ] {
        assert!(
            dockerfile.contains(needle),
            "{needle} missing from the Dockerfile"
        );
    }
}

/// `node` with YAML merge keys (`<<: *anchor`, which compose files use and YAML 1.2
/// parsers leave alone) applied: the merged map's entries, then the node's own.
fn merge_keys(node: Yaml) -> Yaml {
    match node {
        Yaml::Hash(map) => {
            let merge = Yaml::String("<<".into());
            let mut out = yaml_rust2::yaml::Hash::new();
            if let Some(Yaml::Hash(base)) = map.get(&merge) {
                for (k, v) in base {
                    out.insert(k.clone(), merge_keys(v.clone()));
                }
            }
            for (k, v) in map {
                if k != merge {
                    out.insert(k, merge_keys(v));
                }
            }
            Yaml::Hash(out)
        }
        Yaml::Array(items) => Yaml::Array(items.into_iter().map(merge_keys).collect()),
        other => other,
    }
}

#[test]
fn the_compose_file_migrates_first_and_probes_readyz() {
    let text = std::fs::read_to_string(deploy().join("compose.yaml")).unwrap();
    let compose = merge_keys(YamlLoader::load_from_str(&text).unwrap().remove(0));
    let services = &compose["services"];
    let lexecon = &services["lexecon"];
    assert_eq!(
        lexecon["deploy"]["replicas"].as_str(),
        Some("${LEXECON_REPLICAS:-3}")
    );
    assert_eq!(
        lexecon["depends_on"]["migrate"]["condition"].as_str(),
        Some("service_completed_successfully")
    );
    assert_eq!(
        services["migrate"]["depends_on"]["init"]["condition"].as_str(),
        Some("service_completed_successfully")
    );
    let migrate: Vec<&str> = services["migrate"]["command"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(migrate.first(), Some(&"migrate"), "{migrate:?}");
    let probe: Vec<&str> = lexecon["healthcheck"]["test"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(
        probe
            .iter()
            .any(|p| p.contains("/dev/tcp/127.0.0.1/9464") && p.contains("/readyz")),
        "{probe:?}"
    );
    let env = &lexecon["environment"];
    assert_eq!(
        env["LEXECON_SERVER__TLS_CERT_FILE"].as_str(),
        Some("/run/secrets/tls.crt")
    );
    assert_eq!(
        env["LEXECON_SERVER__TLS_KEY_FILE"].as_str(),
        Some("/run/secrets/tls.key")
    );
    for service in ["init", "migrate", "lexecon"] {
        assert_eq!(
            services[service]["image"].as_str(),
            Some("${LEXECON_IMAGE:-lexecon:local}"),
            "{service}"
        );
    }
}
