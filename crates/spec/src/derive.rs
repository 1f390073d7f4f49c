//! Deriving a [`ModelSpec`] from tensor names and shapes.

use std::collections::{BTreeSet, HashMap};

use crate::{
    Excluded, Facts, Family, Flatten, Group, GroupKind, Layout, Member, ModelSpec, Result, Role,
    Scaling, SpecError, TensorEntry, Unproven, UnprovenKind, layer_of,
};

/// The role of a tensor, guessed from its name and shape.
pub(crate) fn role_of(name: &str, shape: &[usize]) -> Role {
    let last = name.rsplit('.').next().unwrap_or(name);
    let lname = name.to_ascii_lowercase();
    let is_norm = lname.contains("norm") || lname.contains("ln_") || lname.contains(".bn");
    match last {
        "running_mean" => Role::RunningMean,
        "running_var" => Role::RunningVar,
        "num_batches_tracked" => Role::Counter,
        "masked_bias" | "inv_freq" => Role::Buffer,
        "bias" if lname.ends_with("attn.bias") && shape.len() == 4 => Role::Buffer,
        "weight" | "gamma" | "g" if shape.len() == 1 => Role::NormWeight,
        "bias" | "beta" | "b" if shape.len() == 1 && is_norm => Role::NormBias,
        "bias" => Role::Bias,
        "weight"
            if lname.contains("emb")
                || lname.ends_with("wte.weight")
                || lname.ends_with("wpe.weight") =>
        {
            Role::Embedding
        }
        "weight" => Role::Weight,
        _ => Role::Other,
    }
}

/// Derives a spec from `(name, shape)` pairs (checkpoint order) and facts. The family is
/// `facts.family` when set, else guessed from the names.
pub fn derive(infos: &[(String, Vec<usize>)], facts: &Facts) -> Result<ModelSpec> {
    let names: HashMap<&str, &[usize]> = infos
        .iter()
        .map(|(n, s)| (n.as_str(), s.as_slice()))
        .collect();
    let family = facts.family.unwrap_or_else(|| guess_family(infos));
    let mut d = Deriver {
        shapes: names,
        facts: facts.clone(),
        groups: vec![],
        excluded: vec![],
        notes: vec![],
        unproven: vec![],
        chain: vec![],
    };
    let family = match family {
        Family::Bert => {
            d.bert()?;
            Family::Bert
        }
        Family::Gpt2 => {
            d.gpt2()?;
            Family::Gpt2
        }
        Family::Llama => {
            d.llama()?;
            Family::Llama
        }
        Family::Resnet => {
            d.resnet()?;
            Family::Resnet
        }
        Family::Mlp | Family::Cnn | Family::Custom => d.chain(infos)?,
    };
    let mut spec = ModelSpec {
        family,
        facts: d.facts,
        tensors: infos
            .iter()
            .map(|(n, s)| TensorEntry {
                name: n.clone(),
                shape: s.clone(),
                role: role_of(n, s),
                layer: layer_of(n).to_string(),
            })
            .collect(),
        groups: d.groups,
        excluded: d.excluded,
        notes: d.notes,
        unproven: d.unproven,
        chain: d.chain,
    };
    let consumers = unknown_consumers(&spec);
    spec.unproven.extend(consumers);
    spec.fill_excluded("not part of any symmetry the deriver knows");
    spec.validate()?;
    Ok(spec)
}

fn guess_family(infos: &[(String, Vec<usize>)]) -> Family {
    let any = |pat: &str| infos.iter().any(|(n, _)| n.contains(pat));
    if any("attention.self.query.weight") {
        Family::Bert
    } else if any("attn.c_attn.weight") {
        Family::Gpt2
    } else if any("self_attn.q_proj.weight") {
        Family::Llama
    } else if infos.iter().any(|(n, _)| resnet_block(n).is_some()) {
        Family::Resnet
    } else if infos.iter().any(|(_, s)| s.len() >= 3) {
        Family::Cnn
    } else {
        Family::Mlp
    }
}

/// `(prefix, stage, block)` of a torchvision ResNet block tensor: `…layerS.B.rest`.
fn resnet_block(name: &str) -> Option<(String, usize, usize)> {
    let mut search = 0;
    while let Some(pos) = name[search..].find("layer") {
        let at = search + pos;
        let rest = &name[at + 5..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !digits.is_empty() && (at == 0 || name.as_bytes()[at - 1] == b'.') {
            let after = &rest[digits.len()..];
            if let Some(after) = after.strip_prefix('.') {
                let bd: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
                if !bd.is_empty() && after[bd.len()..].starts_with('.') {
                    return Some((
                        name[..at].to_string(),
                        digits.parse().ok()?,
                        bd.parse().ok()?,
                    ));
                }
            }
        }
        search = at + 5;
    }
    None
}

/// Natural sort key: digit runs compare as numbers.
fn natural_key(s: &str) -> Vec<(u8, u64, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut digits = false;
    let flush = |cur: &mut String, digits: bool, out: &mut Vec<(u8, u64, String)>| {
        if cur.is_empty() {
            return;
        }
        if digits {
            out.push((0, cur.parse().unwrap_or(u64::MAX), String::new()));
        } else {
            out.push((1, 0, std::mem::take(cur)));
        }
        cur.clear();
    };
    for c in s.chars() {
        let d = c.is_ascii_digit();
        if d != digits {
            flush(&mut cur, digits, &mut out);
            digits = d;
        }
        cur.push(c);
    }
    flush(&mut cur, digits, &mut out);
    out
}

fn trailing_number(s: &str) -> Option<u64> {
    let last = s.rsplit('.').next()?;
    let d: String = last
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    if d.is_empty() {
        return None;
    }
    d.chars().rev().collect::<String>().parse().ok()
}

struct Deriver<'a> {
    shapes: HashMap<&'a str, &'a [usize]>,
    facts: Facts,
    groups: Vec<Group>,
    excluded: Vec<Excluded>,
    notes: Vec<String>,
    unproven: Vec<Unproven>,
    chain: Vec<crate::ChainLink>,
}

#[derive(Debug, Clone)]
struct ChainLayer {
    prefix: String,
    out: usize,
    inp: usize,
    conv: bool,
    norm: Option<String>,
}

impl<'a> Deriver<'a> {
    fn has(&self, n: &str) -> bool {
        self.shapes.contains_key(n)
    }

    fn shape(&self, n: &str) -> Result<&'a [usize]> {
        self.shapes
            .get(n)
            .copied()
            .ok_or_else(|| SpecError::Underivable(format!("expected tensor `{n}`")))
    }

    /// Pushes `m` when its tensor exists.
    fn opt(&self, members: &mut Vec<Member>, m: Member) {
        if self.has(&m.tensor) {
            members.push(m);
        }
    }

    /// BatchNorm (or other norm) members of `prefix`: weight and bias scale with exponent
    /// `exp`, running statistics only move.
    fn norm_members(&self, members: &mut Vec<Member>, prefix: &str, exp: i8) {
        for (t, e) in [
            ("weight", exp),
            ("bias", exp),
            ("running_mean", 0),
            ("running_var", 0),
        ] {
            self.opt(members, Member::new(format!("{prefix}.{t}"), 0, e));
        }
    }

    fn exclude(&mut self, tensor: &str, reason: &str) {
        if self.has(tensor) {
            self.excluded.push(Excluded {
                tensor: tensor.to_string(),
                reason: reason.to_string(),
            });
        }
    }

    // ---------------------------------------------------------------- MLP / CNN chains

    fn chain(&mut self, infos: &[(String, Vec<usize>)]) -> Result<Family> {
        let mut weights: Vec<ChainLayer> = Vec::new();
        let mut norms: Vec<(String, usize)> = Vec::new();
        for (n, s) in infos {
            let Some(prefix) = n.strip_suffix(".weight") else {
                continue;
            };
            match s.len() {
                2 => weights.push(ChainLayer {
                    prefix: prefix.into(),
                    out: s[0],
                    inp: s[1],
                    conv: false,
                    norm: None,
                }),
                3..=5 => weights.push(ChainLayer {
                    prefix: prefix.into(),
                    out: s[0],
                    inp: s[1],
                    conv: true,
                    norm: None,
                }),
                1 => norms.push((prefix.to_string(), s[0])),
                _ => {}
            }
        }
        if weights.is_empty() {
            return Err(SpecError::Underivable(
                "no dense or conv `*.weight` tensors".into(),
            ));
        }
        weights.sort_by(|a, b| {
            (!a.conv, natural_key(&a.prefix)).cmp(&(!b.conv, natural_key(&b.prefix)))
        });
        if !chains(&weights) {
            weights = order_by_shapes(weights).ok_or_else(|| {
                SpecError::Underivable("the dense/conv layers do not form a chain by shape".into())
            })?;
        }
        // Attach each norm layer to the weight layer feeding it.
        let mut all: Vec<String> = weights.iter().map(|w| w.prefix.clone()).collect();
        all.extend(norms.iter().map(|n| n.0.clone()));
        all.sort_by_key(|p| natural_key(p));
        for (np, size) in &norms {
            let pos = all.iter().position(|p| p == np).unwrap_or(0);
            let before = all[..pos].iter().rev().find_map(|p| {
                weights
                    .iter()
                    .position(|w| &w.prefix == p && w.out == *size && w.norm.is_none())
            });
            let by_number = trailing_number(np).and_then(|k| {
                weights.iter().position(|w| {
                    w.out == *size
                        && w.norm.is_none()
                        && trailing_number(&w.prefix) == Some(k)
                        && layer_of(&w.prefix) == layer_of(np)
                })
            });
            match by_number.or(before) {
                Some(i) if i + 1 < weights.len() => weights[i].norm = Some(np.clone()),
                _ => self.notes.push(format!(
                    "norm layer `{np}` is not between two layers of the chain; left alone"
                )),
            }
        }
        let scaling = self.facts.activation_scaling();
        if self.facts.activation.is_none() {
            self.notes.push(
                "activation unknown: permutations only (set `activation` in config.json, checkpoint metadata or a spec file to allow scaling/sign symmetries)".into(),
            );
        }
        for i in 0..weights.len() - 1 {
            let (a, b) = (&weights[i], &weights[i + 1]);
            let positions = if b.inp == a.out { 1 } else { b.inp / a.out };
            let read = match self.facts.flatten {
                _ if positions == 1 => Layout::block(1),
                Some(Flatten::ChannelsLast) => Layout::tiled(0, positions, a.out, 1),
                Some(Flatten::ChannelsFirst) => Layout::block(positions),
                None => {
                    self.unproven.push(Unproven {
                        tensor: format!("{}.weight", b.prefix),
                        kind: UnprovenKind::Flatten,
                        reason: format!(
                            "[{}, {}] reads the {} channels of `{}.weight` flattened over {positions} positions, and shapes cannot tell whether the flatten is channel-major (PyTorch `x.flatten(1)`: set `flatten = \"channels_first\"`) or position-major (channels-last, or a permute before the reshape: `flatten = \"channels_last\"`)",
                            b.out, b.inp, a.out, a.prefix
                        ),
                    });
                    Layout::block(positions)
                }
            };
            let mut members = Vec::new();
            let own = if a.norm.is_some() { 0 } else { 1 };
            members.push(Member::new(format!("{}.weight", a.prefix), 0, own));
            self.opt(
                &mut members,
                Member::new(format!("{}.bias", a.prefix), 0, own),
            );
            let mut group_scaling = scaling;
            if let Some(np) = &a.norm {
                self.norm_members(&mut members, np, 1);
                if !self.has(&format!("{np}.running_mean")) {
                    // A LayerNorm over units is permutation-equivariant but not scale-equivariant.
                    group_scaling = Scaling::None;
                }
            }
            members.push(Member::with_layout(
                format!("{}.weight", b.prefix),
                1,
                read,
                -1,
            ));
            self.groups.push(Group {
                name: format!("hidden.{i}"),
                kind: GroupKind::Hidden,
                size: a.out,
                scaling: group_scaling,
                members,
            });
        }
        let last = &weights[weights.len() - 1].prefix;
        self.exclude(
            &format!("{last}.bias"),
            "bias of the output layer (network outputs are fixed)",
        );
        self.chain = weights
            .iter()
            .map(|w| crate::ChainLink {
                layer: w.prefix.clone(),
                norm: w.norm.clone(),
            })
            .collect();
        self.notes.push(format!(
            "`{}.weight` axis 1 is the network input and `{}.weight` axis 0 the network output: fixed",
            weights[0].prefix,
            weights[weights.len() - 1].prefix
        ));
        Ok(if weights.iter().any(|w| w.conv) {
            Family::Cnn
        } else {
            Family::Mlp
        })
    }

    // ---------------------------------------------------------------- ResNet

    fn resnet(&mut self) -> Result<()> {
        let mut blocks: BTreeSet<(usize, usize)> = BTreeSet::new();
        let mut prefix = None;
        for n in self.shapes.keys() {
            if let Some((p, s, b)) = resnet_block(n) {
                blocks.insert((s, b));
                prefix = Some(p);
            }
        }
        let p = prefix.unwrap_or_default();
        if self.facts.activation.is_none() {
            self.facts.activation = Some("relu".into());
        }
        let inner_scaling = self.facts.activation_scaling();
        let stem = format!("{p}conv1");
        let stem_w = format!("{stem}.weight");
        let stem_out = self.shape(&stem_w)?[0];
        let mut stream = Vec::new();
        stream.push(Member::new(stem_w.clone(), 0, 0));
        self.opt(&mut stream, Member::new(format!("{stem}.bias"), 0, 0));
        self.norm_members(&mut stream, &format!("{p}bn1"), 0);
        let mut stream_size = stem_out;
        let mut stream_name = "residual.stem".to_string();
        for &(s, b) in &blocks {
            let bp = format!("{p}layer{s}.{b}");
            let mut k = 1;
            while self.has(&format!("{bp}.conv{k}.weight")) {
                k += 1;
            }
            let nconv = k - 1;
            if nconv == 0 {
                return Err(SpecError::Underivable(format!("block `{bp}` has no conv1")));
            }
            stream.push(Member::new(format!("{bp}.conv1.weight"), 1, 0));
            let ds = format!("{bp}.downsample.0.weight");
            let mut next_stream = None;
            if self.has(&ds) {
                stream.push(Member::new(ds.clone(), 1, 0));
                let mut ns = vec![Member::new(ds.clone(), 0, 0)];
                self.norm_members(&mut ns, &format!("{bp}.downsample.1"), 0);
                next_stream = Some((ns, self.shape(&ds)?[0], format!("residual.layer{s}")));
            }
            if let Some((ns, size, name)) = next_stream {
                self.groups.push(Group {
                    name: std::mem::replace(&mut stream_name, name),
                    kind: GroupKind::Residual,
                    size: stream_size,
                    scaling: Scaling::None,
                    members: std::mem::replace(&mut stream, ns),
                });
                stream_size = size;
            }
            for c in 1..nconv {
                let w = format!("{bp}.conv{c}.weight");
                let mut m = vec![Member::new(w.clone(), 0, 0)];
                self.opt(&mut m, Member::new(format!("{bp}.conv{c}.bias"), 0, 0));
                self.norm_members(&mut m, &format!("{bp}.bn{c}"), 1);
                m.push(Member::new(format!("{bp}.conv{}.weight", c + 1), 1, -1));
                self.groups.push(Group {
                    name: format!("layer{s}.{b}.hidden.{c}"),
                    kind: GroupKind::Hidden,
                    size: self.shape(&w)?[0],
                    scaling: inner_scaling,
                    members: m,
                });
            }
            let last = format!("{bp}.conv{nconv}");
            stream.push(Member::new(format!("{last}.weight"), 0, 0));
            self.opt(&mut stream, Member::new(format!("{last}.bias"), 0, 0));
            self.norm_members(&mut stream, &format!("{bp}.bn{nconv}"), 0);
        }
        let fc = format!("{p}fc.weight");
        if self.has(&fc) {
            stream.push(Member::new(fc, 1, 0));
        }
        self.exclude(
            &format!("{p}fc.bias"),
            "bias of the output layer (network outputs are fixed)",
        );
        self.groups.push(Group {
            name: stream_name,
            kind: GroupKind::Residual,
            size: stream_size,
            scaling: Scaling::None,
            members: stream,
        });
        self.notes.push(
            "residual streams: permutations only (one per stage, shared by every block's output, the downsample branch and the next consumers)".into(),
        );
        Ok(())
    }

    // ---------------------------------------------------------------- transformers

    /// The head split of separate q/k/v projections (see [`Self::heads`]); while it is unknown
    /// the projections' biases are left out (their within-head dimensions cannot be permuted).
    fn qkv_heads(&mut self, q: &str, k: &str, v: &str) -> Result<Option<(usize, usize, usize)>> {
        let qo = self.shape(&format!("{q}.weight"))?[0];
        let ko = self.shape(&format!("{k}.weight"))?[0];
        let heads = self.heads(&format!("{q}.weight"), qo, ko);
        if heads.is_none() {
            for t in [q, k, v] {
                self.exclude(
                    &format!("{t}.bias"),
                    "attention projection output (within-head dimensions): not permuted while the head count is unknown",
                );
            }
        }
        Ok(heads)
    }

    /// Heads and head dimension from facts and the query projection's output width. `query`
    /// names the query weight; when the heads are unknown or do not fit, it is recorded as
    /// [`UnprovenKind::Heads`] (once) and `None` returned.
    fn heads(&mut self, query: &str, q_out: usize, k_out: usize) -> Option<(usize, usize, usize)> {
        let why = match self.facts.heads {
            None => Err(
                "number of attention heads unknown (no config.json beside the weights, no `heads` in the metadata or a spec file): head and within-head groups are missing; put the model's config.json beside it or set `heads = N`".to_string(),
            ),
            Some(h) => {
                let d = self.facts.head_dim.unwrap_or(q_out / h.max(1));
                if h == 0 || d == 0 || h * d != q_out || k_out % d != 0 {
                    Err(format!(
                        "heads = {h} does not divide the query width {q_out}: head and within-head groups are missing"
                    ))
                } else {
                    let kv = self.facts.kv_heads.unwrap_or(k_out / d);
                    if kv == 0 || h % kv != 0 || kv * d != k_out {
                        Err(format!(
                            "kv_heads = {kv} does not fit key width {k_out}: head and within-head groups are missing"
                        ))
                    } else {
                        Ok((h, kv, d))
                    }
                }
            }
        };
        match why {
            Ok(x) => Some(x),
            Err(reason) => {
                if !self.unproven.iter().any(|u| u.kind == UnprovenKind::Heads) {
                    self.notes.push(reason.clone());
                    self.unproven.push(Unproven {
                        tensor: query.to_string(),
                        kind: UnprovenKind::Heads,
                        reason,
                    });
                }
                None
            }
        }
    }

    fn push_group(
        &mut self,
        name: String,
        kind: GroupKind,
        size: usize,
        scaling: Scaling,
        members: Vec<Member>,
    ) {
        self.groups.push(Group {
            name,
            kind,
            size,
            scaling,
            members,
        });
    }

    fn find_prefix(&self, suffix: &str) -> Result<String> {
        let mut found: Vec<&str> = self
            .shapes
            .keys()
            .filter_map(|n| n.strip_suffix(suffix))
            .filter(|p| p.is_empty() || p.ends_with('.'))
            .collect();
        found.sort();
        found
            .first()
            .map(|s| s.to_string())
            .ok_or_else(|| SpecError::Underivable(format!("no tensor ending in `{suffix}`")))
    }

    fn bert(&mut self) -> Result<()> {
        let p = self.find_prefix("embeddings.word_embeddings.weight")?;
        let emb = format!("{p}embeddings.word_embeddings.weight");
        let dm = self.shape(&emb)?[1];
        let mut res = vec![Member::new(emb.clone(), 1, 0)];
        for t in ["position_embeddings", "token_type_embeddings"] {
            self.opt(
                &mut res,
                Member::new(format!("{p}embeddings.{t}.weight"), 1, 0),
            );
        }
        self.norm_members(&mut res, &format!("{p}embeddings.LayerNorm"), 0);
        let mut i = 0;
        while self.has(&format!("{p}encoder.layer.{i}.attention.self.query.weight")) {
            let l = format!("{p}encoder.layer.{i}");
            let (q, k, v) = (
                format!("{l}.attention.self.query"),
                format!("{l}.attention.self.key"),
                format!("{l}.attention.self.value"),
            );
            let o = format!("{l}.attention.output.dense");
            for t in [&q, &k, &v] {
                res.push(Member::new(format!("{t}.weight"), 1, 0));
            }
            res.push(Member::new(format!("{o}.weight"), 0, 0));
            self.opt(&mut res, Member::new(format!("{o}.bias"), 0, 0));
            self.norm_members(&mut res, &format!("{l}.attention.output.LayerNorm"), 0);
            let (fi, fo) = (
                format!("{l}.intermediate.dense"),
                format!("{l}.output.dense"),
            );
            res.push(Member::new(format!("{fi}.weight"), 1, 0));
            res.push(Member::new(format!("{fo}.weight"), 0, 0));
            self.opt(&mut res, Member::new(format!("{fo}.bias"), 0, 0));
            self.norm_members(&mut res, &format!("{l}.output.LayerNorm"), 0);
            // MLP hidden units.
            let mut m = vec![Member::new(format!("{fi}.weight"), 0, 1)];
            self.opt(&mut m, Member::new(format!("{fi}.bias"), 0, 1));
            m.push(Member::new(format!("{fo}.weight"), 1, -1));
            let ff = self.shape(&format!("{fi}.weight"))?[0];
            let sc = self.facts.activation_scaling();
            self.push_group(format!("layer.{i}.mlp"), GroupKind::Hidden, ff, sc, m);
            // Heads.
            let heads = self.qkv_heads(&q, &k, &v)?;
            if let Some((h, _, d)) = heads {
                let mut m = Vec::new();
                for t in [&q, &k, &v] {
                    m.push(Member::with_layout(
                        format!("{t}.weight"),
                        0,
                        Layout::block(d),
                        0,
                    ));
                    self.opt(
                        &mut m,
                        Member::with_layout(format!("{t}.bias"), 0, Layout::block(d), 0),
                    );
                }
                m.push(Member::with_layout(
                    format!("{o}.weight"),
                    1,
                    Layout::block(d),
                    0,
                ));
                self.push_group(
                    format!("layer.{i}.heads"),
                    GroupKind::Heads,
                    h,
                    Scaling::None,
                    m,
                );
                let tl = Layout::tiled(0, h, d, 1);
                let mut m = Vec::new();
                for (t, e) in [(&q, 1), (&k, -1)] {
                    m.push(Member::with_layout(format!("{t}.weight"), 0, tl, e));
                    self.opt(&mut m, Member::with_layout(format!("{t}.bias"), 0, tl, e));
                }
                self.push_group(
                    format!("layer.{i}.qk_dims"),
                    GroupKind::QkDims,
                    d,
                    Scaling::Any,
                    m,
                );
                let mut m = vec![Member::with_layout(format!("{v}.weight"), 0, tl, 1)];
                self.opt(&mut m, Member::with_layout(format!("{v}.bias"), 0, tl, 1));
                m.push(Member::with_layout(format!("{o}.weight"), 1, tl, -1));
                self.push_group(
                    format!("layer.{i}.vo_dims"),
                    GroupKind::VoDims,
                    d,
                    Scaling::Any,
                    m,
                );
            }
            i += 1;
        }
        // Pooler (tanh) and heads.
        let pooler = format!("{p}pooler.dense");
        if self.has(&format!("{pooler}.weight")) {
            res.push(Member::new(format!("{pooler}.weight"), 1, 0));
            if self.has("classifier.weight") {
                let mut m = vec![Member::new(format!("{pooler}.weight"), 0, 1)];
                self.opt(&mut m, Member::new(format!("{pooler}.bias"), 0, 1));
                m.push(Member::new("classifier.weight", 1, -1));
                let size = self.shape(&format!("{pooler}.weight"))?[0];
                self.push_group("pooler".into(), GroupKind::Hidden, size, Scaling::Sign, m);
                self.exclude(
                    "classifier.bias",
                    "bias of the output layer (network outputs are fixed)",
                );
            } else {
                self.notes
                    .push("pooler output is a network output: fixed".into());
                self.exclude(
                    &format!("{pooler}.bias"),
                    "bias of the pooler, whose output is a network output (fixed)",
                );
                // BertForPreTraining's next-sentence head reads the (fixed) pooler output.
                for t in ["weight", "bias"] {
                    self.exclude(
                        &format!("cls.seq_relationship.{t}"),
                        "next-sentence head: reads the pooler output, which is fixed",
                    );
                }
            }
        }
        let tr = "cls.predictions.transform";
        if self.has(&format!("{tr}.dense.weight")) {
            res.push(Member::new(format!("{tr}.dense.weight"), 1, 0));
            res.push(Member::new(format!("{tr}.dense.weight"), 0, 0));
            self.opt(&mut res, Member::new(format!("{tr}.dense.bias"), 0, 0));
            self.norm_members(&mut res, &format!("{tr}.LayerNorm"), 0);
            self.opt(
                &mut res,
                Member::new("cls.predictions.decoder.weight", 1, 0),
            );
        }
        self.push_residual(dm, res, "vocabulary, positions");
        Ok(())
    }

    fn gpt2(&mut self) -> Result<()> {
        let p = self.find_prefix("wte.weight")?;
        let wte = format!("{p}wte.weight");
        let dm = self.shape(&wte)?[1];
        let mut res = vec![Member::new(wte, 1, 0)];
        self.opt(&mut res, Member::new(format!("{p}wpe.weight"), 1, 0));
        let mut i = 0;
        while self.has(&format!("{p}h.{i}.attn.c_attn.weight")) {
            let l = format!("{p}h.{i}");
            let (ca, cp) = (format!("{l}.attn.c_attn"), format!("{l}.attn.c_proj"));
            let (fc, fp) = (format!("{l}.mlp.c_fc"), format!("{l}.mlp.c_proj"));
            self.norm_members(&mut res, &format!("{l}.ln_1"), 0);
            res.push(Member::new(format!("{ca}.weight"), 0, 0));
            res.push(Member::new(format!("{cp}.weight"), 1, 0));
            self.opt(&mut res, Member::new(format!("{cp}.bias"), 0, 0));
            self.norm_members(&mut res, &format!("{l}.ln_2"), 0);
            res.push(Member::new(format!("{fc}.weight"), 0, 0));
            res.push(Member::new(format!("{fp}.weight"), 1, 0));
            self.opt(&mut res, Member::new(format!("{fp}.bias"), 0, 0));
            self.exclude(&format!("{l}.attn.bias"), "causal-mask buffer");
            self.exclude(&format!("{l}.attn.masked_bias"), "mask fill buffer");
            // MLP hidden units (Conv1D: weight [in, out]).
            let ff = self.shape(&format!("{fc}.weight"))?[1];
            let mut m = vec![Member::new(format!("{fc}.weight"), 1, 1)];
            self.opt(&mut m, Member::new(format!("{fc}.bias"), 0, 1));
            m.push(Member::new(format!("{fp}.weight"), 0, -1));
            let sc = self.facts.activation_scaling();
            self.push_group(format!("layer.{i}.mlp"), GroupKind::Hidden, ff, sc, m);
            let qkv = self.shape(&format!("{ca}.weight"))?[1];
            if qkv != 3 * dm {
                return Err(SpecError::Underivable(format!(
                    "`{ca}.weight` has {qkv} outputs, expected 3 × {dm}"
                )));
            }
            let heads = self.heads(&format!("{ca}.weight"), dm, dm);
            if heads.is_none() {
                self.exclude(
                    &format!("{ca}.bias"),
                    "attention projection output (within-head dimensions): not permuted while the head count is unknown",
                );
            }
            if let Some((h, _, d)) = heads {
                let hl = Layout::tiled(0, 3, dm, d);
                let mut m = vec![Member::with_layout(format!("{ca}.weight"), 1, hl, 0)];
                self.opt(&mut m, Member::with_layout(format!("{ca}.bias"), 0, hl, 0));
                m.push(Member::with_layout(
                    format!("{cp}.weight"),
                    0,
                    Layout::block(d),
                    0,
                ));
                self.push_group(
                    format!("layer.{i}.heads"),
                    GroupKind::Heads,
                    h,
                    Scaling::None,
                    m,
                );
                let mut m = Vec::new();
                for (off, e) in [(0, 1), (dm, -1)] {
                    let tl = Layout::tiled(off, h, d, 1);
                    m.push(Member::with_layout(format!("{ca}.weight"), 1, tl, e));
                    self.opt(&mut m, Member::with_layout(format!("{ca}.bias"), 0, tl, e));
                }
                self.push_group(
                    format!("layer.{i}.qk_dims"),
                    GroupKind::QkDims,
                    d,
                    Scaling::Any,
                    m,
                );
                let tl = Layout::tiled(2 * dm, h, d, 1);
                let mut m = vec![Member::with_layout(format!("{ca}.weight"), 1, tl, 1)];
                self.opt(&mut m, Member::with_layout(format!("{ca}.bias"), 0, tl, 1));
                m.push(Member::with_layout(
                    format!("{cp}.weight"),
                    0,
                    Layout::tiled(0, h, d, 1),
                    -1,
                ));
                self.push_group(
                    format!("layer.{i}.vo_dims"),
                    GroupKind::VoDims,
                    d,
                    Scaling::Any,
                    m,
                );
            }
            i += 1;
        }
        self.norm_members(&mut res, &format!("{p}ln_f"), 0);
        self.opt(&mut res, Member::new("lm_head.weight", 1, 0));
        self.push_residual(dm, res, "vocabulary, positions");
        Ok(())
    }

    fn llama(&mut self) -> Result<()> {
        let p = self.find_prefix("embed_tokens.weight")?;
        let emb = format!("{p}embed_tokens.weight");
        let dm = self.shape(&emb)?[1];
        let mut res = vec![Member::new(emb, 1, 0)];
        if self.facts.rope.is_none() {
            self.facts.rope = Some(true);
        }
        let rope = self.facts.rope == Some(true);
        let mut i = 0;
        while self.has(&format!("{p}layers.{i}.self_attn.q_proj.weight")) {
            let l = format!("{p}layers.{i}");
            let a = format!("{l}.self_attn");
            let (q, k, v, o) = (
                format!("{a}.q_proj"),
                format!("{a}.k_proj"),
                format!("{a}.v_proj"),
                format!("{a}.o_proj"),
            );
            let mlp = format!("{l}.mlp");
            let (g, u, dn) = (
                format!("{mlp}.gate_proj"),
                format!("{mlp}.up_proj"),
                format!("{mlp}.down_proj"),
            );
            self.opt(
                &mut res,
                Member::new(format!("{l}.input_layernorm.weight"), 0, 0),
            );
            for t in [&q, &k, &v] {
                res.push(Member::new(format!("{t}.weight"), 1, 0));
            }
            res.push(Member::new(format!("{o}.weight"), 0, 0));
            self.opt(&mut res, Member::new(format!("{o}.bias"), 0, 0));
            self.opt(
                &mut res,
                Member::new(format!("{l}.post_attention_layernorm.weight"), 0, 0),
            );
            res.push(Member::new(format!("{g}.weight"), 1, 0));
            res.push(Member::new(format!("{u}.weight"), 1, 0));
            res.push(Member::new(format!("{dn}.weight"), 0, 0));
            self.opt(&mut res, Member::new(format!("{dn}.bias"), 0, 0));
            // Gated MLP: silu(gate) * up; `up` rows may be scaled by any factor.
            let ff = self.shape(&format!("{g}.weight"))?[0];
            let mut m = vec![
                Member::new(format!("{g}.weight"), 0, 0),
                Member::new(format!("{u}.weight"), 0, 1),
            ];
            self.opt(&mut m, Member::new(format!("{g}.bias"), 0, 0));
            self.opt(&mut m, Member::new(format!("{u}.bias"), 0, 1));
            m.push(Member::new(format!("{dn}.weight"), 1, -1));
            self.push_group(
                format!("layer.{i}.mlp"),
                GroupKind::Hidden,
                ff,
                Scaling::Any,
                m,
            );
            let heads = self.qkv_heads(&q, &k, &v)?;
            if let Some((h, kv, d)) = heads {
                let rep = h / kv;
                let mut m = Vec::new();
                for (t, b) in [(&q, rep * d), (&k, d), (&v, d)] {
                    m.push(Member::with_layout(
                        format!("{t}.weight"),
                        0,
                        Layout::block(b),
                        0,
                    ));
                    self.opt(
                        &mut m,
                        Member::with_layout(format!("{t}.bias"), 0, Layout::block(b), 0),
                    );
                }
                m.push(Member::with_layout(
                    format!("{o}.weight"),
                    1,
                    Layout::block(rep * d),
                    0,
                ));
                let name = if rep > 1 { "kv_groups" } else { "heads" };
                self.push_group(
                    format!("layer.{i}.{name}"),
                    GroupKind::Heads,
                    kv,
                    Scaling::None,
                    m,
                );
                if rope {
                    if i == 0 {
                        self.notes.push(
                            "rotary embeddings: query/key dimensions within a head are fixed"
                                .into(),
                        );
                    }
                } else {
                    let mut m = Vec::new();
                    for (t, e, n) in [(&q, 1, h), (&k, -1, kv)] {
                        let tl = Layout::tiled(0, n, d, 1);
                        m.push(Member::with_layout(format!("{t}.weight"), 0, tl, e));
                        self.opt(&mut m, Member::with_layout(format!("{t}.bias"), 0, tl, e));
                    }
                    self.push_group(
                        format!("layer.{i}.qk_dims"),
                        GroupKind::QkDims,
                        d,
                        Scaling::Any,
                        m,
                    );
                }
                let mut m = vec![Member::with_layout(
                    format!("{v}.weight"),
                    0,
                    Layout::tiled(0, kv, d, 1),
                    1,
                )];
                self.opt(
                    &mut m,
                    Member::with_layout(format!("{v}.bias"), 0, Layout::tiled(0, kv, d, 1), 1),
                );
                m.push(Member::with_layout(
                    format!("{o}.weight"),
                    1,
                    Layout::tiled(0, h, d, 1),
                    -1,
                ));
                self.push_group(
                    format!("layer.{i}.vo_dims"),
                    GroupKind::VoDims,
                    d,
                    Scaling::Any,
                    m,
                );
                if rep > 1 && i == 0 {
                    self.notes.push(format!(
                        "grouped-query attention ({h} query heads, {kv} key/value heads): key/value heads move with their {rep} query heads; query heads within a group are not permuted"
                    ));
                }
            }
            i += 1;
        }
        self.opt(&mut res, Member::new(format!("{p}norm.weight"), 0, 0));
        self.opt(&mut res, Member::new("lm_head.weight", 1, 0));
        self.push_residual(dm, res, "vocabulary");
        Ok(())
    }

    /// A transformer's residual-stream group (width `dm`) and the note on what it leaves fixed
    /// (`rows`: which embedding rows).
    fn push_residual(&mut self, dm: usize, res: Vec<Member>, rows: &str) {
        self.push_group(
            "residual".into(),
            GroupKind::Residual,
            dm,
            Scaling::None,
            res,
        );
        self.notes.push(format!(
            "embedding rows ({rows}) and the output vocabulary are fixed"
        ));
    }
}

/// Tensors no group moves and the deriver did not place on purpose, that have an axis the size
/// of a permuted group (of more than one unit): they may read those units, and permuting the
/// group without them could change the function.
fn unknown_consumers(spec: &ModelSpec) -> Vec<Unproven> {
    let placed: std::collections::HashSet<&str> = spec
        .groups
        .iter()
        .flat_map(|g| g.members.iter().map(|m| m.tensor.as_str()))
        .chain(spec.excluded.iter().map(|e| e.tensor.as_str()))
        .collect();
    let mut out = Vec::new();
    for t in &spec.tensors {
        if placed.contains(t.name.as_str()) || matches!(t.role, Role::Counter | Role::Buffer) {
            continue;
        }
        let hits: Vec<&Group> = spec
            .groups
            .iter()
            .filter(|g| g.size > 1 && t.shape.contains(&g.size))
            .collect();
        if let Some(g) = hits.first() {
            let same: Vec<String> = hits
                .iter()
                .filter(|h| h.size == g.size)
                .map(|h| {
                    let m = &h.members[0];
                    format!("`{}` (`{}` axis {})", h.name, m.tensor, m.axis)
                })
                .collect();
            let groups = match same.len() {
                1 => format!("group {}", same[0]),
                n => format!("groups {} and {}", same[..n - 1].join(", "), same[n - 1]),
            };
            out.push(Unproven {
                tensor: t.name.clone(),
                kind: UnprovenKind::Consumer,
                reason: format!(
                    "{:?} has an axis of {}, the size of {groups}, but no group moves it: it may read those units (an LSTM, or another layer the deriver does not know), so permuting them without it could change the function; if it reads none of them, list it in `exclude = [...]`, else write the groups out (`replace = true`)",
                    t.shape, g.size
                ),
            });
        }
    }
    out
}

fn compatible(a: &ChainLayer, b: &ChainLayer) -> bool {
    if b.inp == a.out {
        return true;
    }
    a.conv && !b.conv && a.out > 0 && b.inp % a.out == 0
}

fn chains(ws: &[ChainLayer]) -> bool {
    ws.windows(2).all(|w| compatible(&w[0], &w[1]))
}

/// Orders layers into a chain by shapes alone, when it is unique.
fn order_by_shapes(ws: Vec<ChainLayer>) -> Option<Vec<ChainLayer>> {
    let n = ws.len();
    // Start: a layer no other layer can feed.
    let starts: Vec<usize> = (0..n)
        .filter(|&i| !(0..n).any(|j| j != i && compatible(&ws[j], &ws[i])))
        .collect();
    if starts.len() != 1 {
        return None;
    }
    let mut used = vec![false; n];
    let mut order = vec![starts[0]];
    used[starts[0]] = true;
    while order.len() < n {
        let cur = *order.last()?;
        let next: Vec<usize> = (0..n)
            .filter(|&j| !used[j] && compatible(&ws[cur], &ws[j]))
            .collect();
        if next.len() != 1 {
            return None;
        }
        used[next[0]] = true;
        order.push(next[0]);
    }
    Some(order.into_iter().map(|i| ws[i].clone()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infos(v: &[(&str, &[usize])]) -> Vec<(String, Vec<usize>)> {
        v.iter().map(|(n, s)| (n.to_string(), s.to_vec())).collect()
    }

    #[test]
    fn mlp_chain_natural_order() {
        let i = infos(&[
            ("layers.10.weight", &[3, 8]),
            ("layers.10.bias", &[3]),
            ("layers.0.weight", &[16, 4]),
            ("layers.0.bias", &[16]),
            ("layers.2.weight", &[8, 16]),
            ("layers.2.bias", &[8]),
        ]);
        let s = derive(&i, &Facts::default()).unwrap();
        assert_eq!(s.family, Family::Mlp);
        assert_eq!(s.groups.len(), 2);
        assert_eq!(s.groups[0].size, 16);
        assert_eq!(s.groups[0].members[2].tensor, "layers.2.weight");
        assert_eq!(s.groups[1].members[2].tensor, "layers.10.weight");
        assert_eq!(s.groups[0].scaling, Scaling::None);
    }

    #[test]
    fn cnn_with_bn_named_by_number() {
        let i = infos(&[
            ("bn1.weight", &[4]),
            ("bn1.bias", &[4]),
            ("bn1.running_mean", &[4]),
            ("bn1.running_var", &[4]),
            ("bn1.num_batches_tracked", &[]),
            ("conv1.weight", &[4, 1, 3, 3]),
            ("conv2.weight", &[6, 4, 3, 3]),
            ("fc1.weight", &[5, 24]),
            ("fc2.weight", &[2, 5]),
        ]);
        let f = Facts {
            activation: Some("relu".into()),
            ..Facts::default()
        };
        let s = derive(&i, &f).unwrap();
        assert_eq!(s.family, Family::Cnn);
        let g0 = &s.groups[0];
        assert!(g0.members.iter().any(|m| m.tensor == "bn1.running_var"));
        assert_eq!(g0.scaling, Scaling::Positive);
        let flat = &s.groups[1].members.last().unwrap();
        assert_eq!(flat.tensor, "fc1.weight");
        assert_eq!(flat.layout.block, 4);
        assert!(
            s.excluded
                .iter()
                .any(|e| e.tensor == "bn1.num_batches_tracked")
        );
    }

    #[test]
    fn shapes_order_mixed_names() {
        let i = infos(&[
            ("head.weight", &[2, 8]),
            ("net.0.weight", &[16, 4]),
            ("net.1.weight", &[8, 16]),
        ]);
        let s = derive(&i, &Facts::default()).unwrap();
        assert_eq!(s.groups[0].members[0].tensor, "net.0.weight");
        assert_eq!(s.groups[1].members.last().unwrap().tensor, "head.weight");
    }

    #[test]
    fn resnet_block_detected() {
        assert_eq!(
            resnet_block("model.layer2.0.conv1.weight"),
            Some(("model.".into(), 2, 0))
        );
        assert_eq!(resnet_block("layers.2.weight"), None);
    }

    #[test]
    fn bad_layout_is_an_error() {
        let mut s = derive(
            &infos(&[("a.weight", &[4, 3]), ("b.weight", &[2, 4])]),
            &Facts::default(),
        )
        .unwrap();
        s.groups[0].size = 5;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("a.weight"), "{e}");
    }
}
