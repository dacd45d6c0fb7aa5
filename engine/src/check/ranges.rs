//! Hyperparameter ranges. Each rule is one line: where the value is, whether it holds,
//! what was expected, what was found, and a hint.

use crate::diag::Diagnostic;
use crate::parse::{ParsedPipeline, Seg};
use crate::spec::{
    AggregatorSpec, FederatedSpec, LocalSchedule, OptimizerSpec, PartitionSpec, PerRound, Schedule,
    SourceSpec, SplitSpec, Stage, Trigger,
};

/// One range rule.
struct Rule {
    at: Vec<Seg>,
    ok: bool,
    expected: String,
    found: String,
    hint: String,
}

/// Collects rules under a base path.
struct Rules<'a> {
    base: Vec<Seg>,
    all: &'a mut Vec<Rule>,
}

impl Rules<'_> {
    fn under(&mut self, keys: &[Seg]) -> Rules<'_> {
        Rules {
            base: [self.base.as_slice(), keys].concat(),
            all: self.all,
        }
    }

    /// Adds a rule about the value at `key` (a field name, `key.index`, or `""` for the
    /// base itself).
    fn rule(&mut self, key: &str, ok: bool, expected: &str, found: impl ToString, hint: &str) {
        let mut at = self.base.clone();
        for part in key.split('.').filter(|p| !p.is_empty()) {
            at.push(
                part.parse()
                    .map_or_else(|_| Seg::Key(part.into()), Seg::Index),
            );
        }
        self.all.push(Rule {
            at,
            ok,
            expected: expected.to_string(),
            found: found.to_string(),
            hint: hint.to_string(),
        });
    }
}

fn key(k: &str) -> Seg {
    Seg::Key(k.into())
}

/// Reports every value outside its range.
pub(super) fn check(parsed: &ParsedPipeline, out: &mut Vec<Diagnostic>) {
    let p = &parsed.pipeline;
    let mut all = Vec::new();
    let mut root = Rules {
        base: Vec::new(),
        all: &mut all,
    };
    match p.schedule {
        Schedule::Epochs(n) => root.under(&[key("schedule")]).rule(
            "epochs",
            n > 0,
            "> 0",
            n,
            "train for at least one epoch",
        ),
        Schedule::Steps(n) => root.under(&[key("schedule")]).rule(
            "steps",
            n > 0,
            "> 0",
            n,
            "train for at least one step",
        ),
        Schedule::Rounds(n) => root.under(&[key("schedule")]).rule(
            "rounds",
            n > 0,
            "> 0",
            n,
            "train for at least one round",
        ),
    }
    if let Some(f) = &p.federated {
        federated(&mut root.under(&[key("federated")]), f);
    }
    for (name, ds) in &p.datasets {
        let mut r = root.under(&[key("datasets"), key(name)]);
        source(&mut r.under(&[key("source")]), &ds.source);
        if let SplitSpec::Fraction(f) = &ds.split {
            fractions(&mut r.under(&[key("split")]), f.train, f.val, f.test);
        }
        if let crate::spec::Normalize::Scale(s) = &ds.normalize {
            r.rule(
                "normalize.factor",
                s.factor.is_finite() && s.factor != 0.0,
                "a finite non-zero number",
                s.factor,
                "e.g. 0.0625 maps 0..16 to 0..1",
            );
        }
    }
    for (i, stage) in p.stages.iter().enumerate() {
        let mut r = root.under(&[key("stages"), Seg::Index(i)]);
        stage_rules(&mut r, stage);
    }
    for rule in all.into_iter().filter(|r| !r.ok) {
        let what = rule
            .at
            .iter()
            .rev()
            .find_map(|s| {
                if let Seg::Key(k) = s {
                    Some(k.as_str())
                } else {
                    None
                }
            })
            .unwrap_or("value");
        let mut d = Diagnostic::new(
            "invalid-hyperparameter",
            format!("`{what}` is out of range"),
        )
        .at(parsed.span(&rule.at), format!("must be {}", rule.expected))
        .expected_found(rule.expected, rule.found)
        .hint(rule.hint);
        if let [Seg::Key(stages), Seg::Index(i), ..] = rule.at.as_slice()
            && stages == "stages"
        {
            d = d.stage(p.stages[*i].id());
        }
        out.push(d);
    }
}

#[rustfmt::skip]
fn fractions(r: &mut Rules, train: f64, val: f64, test: f64) {
    for (k, v) in [("train", train), ("val", val), ("test", test)] {
        r.rule(k, (0.0..=1.0).contains(&v), "in [0, 1]", v, "fractions are shares of the data set");
    }
    r.rule("train", train > 0.0, "> 0", train, "the train split cannot be empty");
    let sum = train + val + test;
    r.rule("", sum <= 1.0 + 1e-9, "fractions with a sum of at most 1", format!("a sum of {sum}"), "lower one of `train`, `val`, `test`");
}

#[rustfmt::skip]
/// The source's own range rules (each source states them in its file).
fn source(r: &mut Rules, source: &SourceSpec) {
    for b in source.bounds().0 {
        r.rule(&b.key, b.ok, &b.expected, b.found, &b.hint);
    }
}

#[rustfmt::skip]
fn stage_rules(r: &mut Rules, stage: &Stage) {
    match stage {
        Stage::Load(l) => batch_size(r, l.batch_size),
        Stage::Eval(e) => {
            batch_size(r, e.batch_size);
            every_n(r, &e.on);
        }
        Stage::Loss(l) => {
            r.rule("label_smoothing", (0.0..1.0).contains(&l.label_smoothing), "in [0, 1)", l.label_smoothing, "0.1 is a common choice");
            let (t, a) = (l.temperature(), l.alpha());
            r.rule("temperature", t > 0.0 && t.is_finite(), "> 0", t, "2 to 8 is common for distillation");
            r.rule("alpha", (0.0..=1.0).contains(&a), "in [0, 1]", a, "0.9 weights the teacher's soft targets strongly");
        }
        Stage::Accumulate(a) => r.rule("steps", a.steps > 0, "> 0", a.steps, "accumulate over at least one micro-batch"),
        Stage::Step(st) => {
            optimizer(&mut r.under(&[key("optimizer")]), &st.optimizer);
            if let Some(clip) = st.clip_grad_norm {
                r.rule("clip_grad_norm", clip > 0.0 && clip.is_finite(), "> 0", clip, "1.0 is a common choice");
            }
        }
        Stage::Callback(cb) => {
            every_n(r, cb.on.as_deref().unwrap_or_default());
            let mut c = r.under(&[key("callback")]);
            for b in cb.callback.bounds().0 {
                c.rule(&b.key, b.ok, &b.expected, b.found, &b.hint);
            }
        }
        Stage::Forward(_) | Stage::Backward(_) => {}
    }
}

/// Largest batch accepted: far beyond what fits a device, small enough for safe arithmetic.
const MAX_BATCH: usize = 1 << 20;

fn batch_size(r: &mut Rules, batch: usize) {
    r.rule(
        "batch_size",
        batch > 0,
        "> 0",
        batch,
        "a batch holds at least one sample",
    );
    r.rule(
        "batch_size",
        batch <= MAX_BATCH,
        "at most 1048576",
        batch,
        "check the batch size for a typo",
    );
}

fn every_n(r: &mut Rules, triggers: &[Trigger]) {
    for (k, t) in triggers.iter().enumerate() {
        if let Trigger::EveryNSteps(n) = t {
            r.rule(
                &format!("on.{k}.every_n_steps"),
                *n > 0,
                "> 0",
                n,
                "fire every 1 or more steps",
            );
        }
        if let Trigger::EveryNRounds(n) = t {
            r.rule(
                &format!("on.{k}.every_n_rounds"),
                *n > 0,
                "> 0",
                n,
                "fire every 1 or more rounds",
            );
        }
    }
}

#[rustfmt::skip]
fn federated(r: &mut Rules, f: &FederatedSpec) {
    r.rule("clients", f.clients > 0, "> 0", f.clients, "a federation has at least one client");
    match f.per_round {
        PerRound::Fraction(c) => {
            r.rule("per_round.fraction", c > 0.0 && c <= 1.0, "in (0, 1]", c, "C is the fraction of clients per round, e.g. 0.1");
            r.rule("per_round.fraction", c * f64::from(f.clients) >= 1.0 || c <= 0.0 || c > 1.0, "C x clients >= 1", format!("{c} x {} = {}", f.clients, c * f64::from(f.clients)), "fewer than one client per round; raise the fraction or use `per_round: {count: 1}`");
        }
        PerRound::Count(n) => r.rule("per_round.count", n > 0 && n <= f.clients, "in 1 ..= clients", n, "sample at most every client each round"),
    }
    match f.local {
        LocalSchedule::Epochs(n) => r.rule("local.epochs", n > 0, "> 0", n, "clients train at least one epoch per round"),
        LocalSchedule::Steps(n) => r.rule("local.steps", n > 0, "> 0", n, "clients train at least one step per round"),
    }
    match &f.partition {
        PartitionSpec::Iid => {}
        PartitionSpec::Shards(s) => r.rule("partition.shards_per_client", s.shards_per_client > 0, "> 0", s.shards_per_client, "McMahan et al. give each client 2 shards"),
        PartitionSpec::Dirichlet(d) => r.rule("partition.alpha", d.alpha > 0.0 && d.alpha.is_finite(), "> 0", d.alpha, "0.1 is strongly non-IID, 0.5 common, 100 nearly IID"),
    }
    let unit = |v: f64| (0.0..1.0).contains(&v);
    match &f.aggregator {
        AggregatorSpec::Fedavg => {}
        AggregatorSpec::Fedprox(p) => r.rule("aggregator.mu", p.mu >= 0.0 && p.mu.is_finite(), ">= 0", p.mu, "Li et al. try 0.001, 0.01, 0.1 and 1"),
        AggregatorSpec::Fedavgm(m) => {
            r.rule("aggregator.lr", m.lr > 0.0 && m.lr.is_finite(), "> 0", m.lr, "the server learning rate, typically 1");
            r.rule("aggregator.momentum", unit(m.momentum), "in [0, 1)", m.momentum, "typical server momentum: 0.9");
        }
        AggregatorSpec::Fedadam(a) | AggregatorSpec::Fedyogi(a) | AggregatorSpec::Fedadagrad(a) => {
            r.rule("aggregator.lr", a.lr > 0.0 && a.lr.is_finite(), "> 0", a.lr, "Reddi et al. tune the server lr over 10^-3 .. 10^0");
            r.rule("aggregator.beta1", unit(a.beta1), "in [0, 1)", a.beta1, "typical: 0.9");
            r.rule("aggregator.beta2", unit(a.beta2), "in [0, 1)", a.beta2, "typical: 0.99");
            r.rule("aggregator.tau", a.tau > 0.0 && a.tau.is_finite(), "> 0", a.tau, "typical: 0.001");
        }
        AggregatorSpec::Scaffold(s) => r.rule("aggregator.lr", s.lr > 0.0 && s.lr.is_finite(), "> 0", s.lr, "the global learning rate, typically 1"),
    }
    if let Some(e) = &f.client_eval {
        r.rule("client_eval.every_n_rounds", e.every_n_rounds > 0, "> 0", e.every_n_rounds, "evaluate every 1 or more rounds");
    }
}

/// The optimizer's own range rules (each optimizer states them in its file).
fn optimizer(r: &mut Rules, opt: &OptimizerSpec) {
    for b in opt.bounds().0 {
        r.rule(&b.key, b.ok, &b.expected, b.found, &b.hint);
    }
}
