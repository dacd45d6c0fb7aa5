//! Federated rounds on one device: the global model, the round's sum of client updates and
//! each aggregator's server state live in device buffers next to the client template's
//! [`TrainStep`]. A round is: for each sampled client in order, copy the global model into
//! the step, train locally with the ordinary step, add the client's update to the sum
//! (one kernel, fixed client order: deterministic); then one server kernel turns the sum
//! into the next global model. Nothing is read back; memory does not grow with the number
//! of clients except for SCAFFOLD's per-client control variates.
//!
//! One file per aggregator (its CPU reference and kernel binding); [`Aggregator`] is the
//! registry.

pub mod fedadagrad;
pub mod fedadam;
pub mod fedavg;
pub mod fedavgm;
pub mod fedprox;
pub mod fedyogi;
pub mod scaffold;

use bytemuck::{Pod, Zeroable};

use crate::elementwise::wgsl_f32;
use crate::gpu::{Buffer, BufferRef, Dispatch, DispatchInfo, Gpu, GpuError, KernelBuilder};
use crate::train::{NamedTensor, TrainStep};

pub(crate) const COMMON_WGSL: &str = include_str!("../../../shaders/fed_common.wgsl");
const DELTA_WGSL: &str = include_str!("../../../shaders/fed_client_delta.wgsl");
const ZERO_WGSL: &str = include_str!("../../../shaders/zero.wgsl");

/// Hyperparameters of the adaptive server optimizers (Reddi et al. 2021, Algorithm 2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adaptive {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub tau: f32,
}

/// How client updates become the next global model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Aggregator {
    FedAvg,
    FedProx { mu: f32 },
    FedAvgM { lr: f32, momentum: f32 },
    FedAdam(Adaptive),
    FedYogi(Adaptive),
    FedAdagrad(Adaptive),
    Scaffold { lr: f32 },
}

impl Aggregator {
    /// The name as pipelines write it.
    pub fn name(&self) -> &'static str {
        match self {
            Aggregator::FedAvg => "fedavg",
            Aggregator::FedProx { .. } => "fedprox",
            Aggregator::FedAvgM { .. } => "fedavgm",
            Aggregator::FedAdam(_) => "fedadam",
            Aggregator::FedYogi(_) => "fedyogi",
            Aggregator::FedAdagrad(_) => "fedadagrad",
            Aggregator::Scaffold { .. } => "scaffold",
        }
    }

    /// Server state kept per learnable parameter, by name (checkpoint tensors are
    /// `federated.{name}`).
    pub fn server_state(&self) -> &'static [&'static str] {
        match self {
            Aggregator::FedAvg | Aggregator::FedProx { .. } => &[],
            Aggregator::FedAvgM { .. } => &["momentum"],
            Aggregator::FedAdam(_) | Aggregator::FedYogi(_) | Aggregator::FedAdagrad(_) => {
                &["exp_avg", "exp_avg_sq"]
            }
            Aggregator::Scaffold { .. } => &["server_control"],
        }
    }

    /// Whether client updates are weighted by their samples (FedAvg and its server
    /// optimizers) or equally (SCAFFOLD).
    pub fn weights_by_samples(&self) -> bool {
        !matches!(self, Aggregator::Scaffold { .. })
    }

    /// Checks hyperparameters.
    pub fn check(&self) -> Result<(), String> {
        let positive = |n: &str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{n} must be positive, found {v}"))
            }
        };
        let unit = |n: &str, v: f32| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{n} must be in [0, 1), found {v}"))
            }
        };
        match *self {
            Aggregator::FedAvg => Ok(()),
            Aggregator::FedProx { mu } if mu.is_finite() && mu >= 0.0 => Ok(()),
            Aggregator::FedProx { mu } => Err(format!("mu must be >= 0, found {mu}")),
            Aggregator::FedAvgM { lr, momentum } => {
                positive("lr", lr)?;
                unit("momentum", momentum)
            }
            Aggregator::FedAdam(a) | Aggregator::FedYogi(a) | Aggregator::FedAdagrad(a) => {
                positive("lr", a.lr)?;
                positive("tau", a.tau)?;
                unit("beta1", a.beta1)?;
                unit("beta2", a.beta2)
            }
            Aggregator::Scaffold { lr } => positive("lr", lr),
        }
    }

    /// CPU reference of the server update: `global` moves by the round's mean client
    /// update `delta` (weighted as [`Aggregator::weights_by_samples`] says); `state` holds
    /// [`Aggregator::server_state`] slots of `global.len()` each, one after the other.
    /// SCAFFOLD's server control moves in [`scaffold::server_control_cpu`].
    pub fn server_step_cpu(&self, global: &mut [f32], delta: &[f32], state: &mut [f32]) {
        match *self {
            Aggregator::FedAvg | Aggregator::FedProx { .. } => fedavg::step_cpu(global, delta),
            Aggregator::FedAvgM { lr, momentum } => {
                fedavgm::step_cpu(global, delta, state, lr, momentum)
            }
            Aggregator::FedAdam(a) => {
                adaptive_cpu(global, delta, state, &a, fedadam::second_moment)
            }
            Aggregator::FedYogi(a) => {
                adaptive_cpu(global, delta, state, &a, fedyogi::second_moment)
            }
            Aggregator::FedAdagrad(a) => {
                adaptive_cpu(global, delta, state, &a, fedadagrad::second_moment)
            }
            Aggregator::Scaffold { lr } => scaffold::step_cpu(global, delta, lr),
        }
    }

    /// The server kernel over the `n` learnable words.
    fn server_dispatch(
        &self,
        k: &mut KernelBuilder,
        b: &ServerBindings,
        n: usize,
    ) -> Result<Dispatch, GpuError> {
        match *self {
            Aggregator::FedAvg | Aggregator::FedProx { .. } => fedavg::dispatch(k, b, n),
            Aggregator::FedAvgM { lr, momentum } => fedavgm::dispatch(k, b, n, lr, momentum),
            Aggregator::FedAdam(a) => adaptive_dispatch(k, "fedadam", fedadam::WGSL, b, n, &a),
            Aggregator::FedYogi(a) => adaptive_dispatch(k, "fedyogi", fedyogi::WGSL, b, n, &a),
            Aggregator::FedAdagrad(a) => {
                adaptive_dispatch(k, "fedadagrad", fedadagrad::WGSL, b, n, &a)
            }
            Aggregator::Scaffold { lr } => scaffold::dispatch(k, b, n, lr),
        }
    }
}

/// Reddi et al.'s Algorithm 2 with the second-moment rule `second(v, d, beta2)`.
fn adaptive_cpu(
    global: &mut [f32],
    delta: &[f32],
    state: &mut [f32],
    a: &Adaptive,
    second: fn(f32, f32, f32) -> f32,
) {
    let n = global.len();
    let (m, v) = state.split_at_mut(n);
    for i in 0..n {
        let d = delta[i];
        m[i] = a.beta1 * m[i] + (1.0 - a.beta1) * d;
        v[i] = second(v[i], d, a.beta2);
        global[i] += a.lr * m[i] / (v[i].sqrt() + a.tau);
    }
}

fn adaptive_dispatch(
    k: &mut KernelBuilder,
    kernel: &str,
    wgsl: &str,
    b: &ServerBindings,
    n: usize,
    a: &Adaptive,
) -> Result<Dispatch, GpuError> {
    let state = b
        .state
        .ok_or_else(|| GpuError::InvalidConfig(format!("{kernel} needs server state")))?;
    k.compute_1d(
        kernel,
        &[COMMON_WGSL, wgsl],
        n,
        &[
            ("LR", wgsl_f32(a.lr)),
            ("BETA1", wgsl_f32(a.beta1)),
            ("BETA2", wgsl_f32(a.beta2)),
            ("TAU", wgsl_f32(a.tau)),
        ],
        &[b.uniform, b.acc, state, b.global],
    )
}

/// What a server kernel binds.
pub(crate) struct ServerBindings<'a> {
    pub uniform: &'a BufferRef,
    pub acc: &'a BufferRef,
    pub state: Option<&'a BufferRef>,
    pub global: &'a BufferRef,
    /// SCAFFOLD: the round's sum of control-variate changes and the server control.
    pub acc_c: Option<&'a BufferRef>,
    pub clients: u32,
}

/// Layout of the federated uniform (`Fed` in `shaders/fed_common.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
struct FedUniform {
    weight: f32,
    inv_total: f32,
    client_scale: f32,
    slot: u32,
}

/// The device side of a federated run over one client template.
pub struct Federation {
    aggregator: Aggregator,
    clients: u32,
    /// Learnable words (the server rule's range) and all words (with buffers such as batch
    /// norm statistics, which are averaged).
    learnable: usize,
    words: usize,
    global: Buffer,
    state: Option<Buffer>,
    controls: Option<Buffer>,
    uniform: Buffer,
    begin: Vec<Dispatch>,
    end: Vec<Dispatch>,
    server: Vec<Dispatch>,
}

impl Federation {
    /// Allocates the global model (a copy of `step`'s current parameters), the round's sums
    /// and the aggregator's state for `clients` clients, and installs the aggregator's local
    /// correction (FedProx, SCAFFOLD) into `step`'s update.
    pub fn new(
        gpu: &Gpu,
        step: &mut TrainStep,
        aggregator: Aggregator,
        clients: u32,
    ) -> Result<Federation, GpuError> {
        aggregator.check().map_err(GpuError::InvalidConfig)?;
        if clients == 0 {
            return Err(GpuError::InvalidConfig(
                "a federation needs at least one client".into(),
            ));
        }
        let learnable = step.model().packed_len;
        let words = step.model().params_words();
        let bytes = |n: usize| (n * 4) as u64;
        let global = gpu.storage_buffer("fed.global", bytes(words))?;
        let acc = gpu.storage_buffer("fed.update_sum", bytes(words))?;
        gpu.write(&acc, 0, &vec![0.0f32; words])?;
        let n_state = aggregator.server_state().len();
        let state = if n_state > 0 {
            let s = gpu.storage_buffer("fed.server_state", bytes(learnable * n_state))?;
            gpu.write(&s, 0, &vec![0.0f32; learnable * n_state])?;
            Some(s)
        } else {
            None
        };
        let scaffold = matches!(aggregator, Aggregator::Scaffold { .. });
        let (controls, acc_c) = if scaffold {
            let rows = learnable * clients as usize;
            let c = gpu.storage_buffer("fed.client_controls", bytes(rows))?;
            gpu.write(&c, 0, &vec![0.0f32; rows])?;
            let a = gpu.storage_buffer("fed.control_sum", bytes(learnable))?;
            gpu.write(&a, 0, &vec![0.0f32; learnable])?;
            (Some(c), Some(a))
        } else {
            (None, None)
        };
        let uniform = gpu.uniform_buffer("fed", std::mem::size_of::<FedUniform>() as u64)?;
        gpu.write(&uniform, 0, &[FedUniform::default()])?;
        let io = step.buffers();
        let whole = BufferRef::whole;
        let (g, a, u) = (whole(&global), whole(&acc), whole(&uniform));
        let params = io.params.words(0, words as u64);
        let g_learn = g.words(0, learnable as u64);
        let p_learn = io.params.words(0, learnable as u64);
        // The global model starts as the template's initialisation.
        gpu.submit_dispatches([&Dispatch::copy(gpu, "fed_init_global", &params, &g)])?;
        let mut k = KernelBuilder::new(gpu);
        let mut begin = vec![Dispatch::copy(gpu, "fed_global_to_client", &g, &params)];
        begin.push(k.compute_1d("zero", &[ZERO_WGSL], learnable, &[], &[&io.grads])?);
        if let Some(s) = &io.state {
            let len = (s.size / 4) as usize;
            begin.push(k.compute_1d("zero", &[ZERO_WGSL], len, &[], &[s])?);
        }
        let correction = match aggregator {
            Aggregator::FedProx { mu } if mu > 0.0 => {
                vec![fedprox::dispatch(
                    &mut k, &io.step, &p_learn, &g_learn, &io.grads, learnable, mu,
                )?]
            }
            Aggregator::Scaffold { .. } => {
                let server = state.as_ref().map(whole).ok_or_else(|| {
                    GpuError::InvalidConfig("SCAFFOLD needs its server control".into())
                })?;
                let c = controls.as_ref().map(whole).ok_or_else(|| {
                    GpuError::InvalidConfig("SCAFFOLD needs client controls".into())
                })?;
                vec![scaffold::correct_dispatch(
                    &mut k, &io.step, &u, &server, &c, &io.grads, learnable,
                )?]
            }
            _ => Vec::new(),
        };
        step.set_grad_correction(correction);
        let mut end = vec![k.compute_1d(
            "fed_client_delta",
            &[COMMON_WGSL, DELTA_WGSL],
            words,
            &[],
            &[&u, &params, &g, &a],
        )?];
        let acc_c_ref = acc_c.as_ref().map(whole);
        let state_ref = state.as_ref().map(whole);
        if let (Some(c), Some(ac), Some(server)) = (&controls, &acc_c_ref, &state_ref) {
            end.push(scaffold::client_dispatch(
                &mut k,
                &u,
                &p_learn,
                &g_learn,
                server,
                &whole(c),
                ac,
                learnable,
            )?);
        }
        let a_learn = a.words(0, learnable as u64);
        let mut server = vec![aggregator.server_dispatch(
            &mut k,
            &ServerBindings {
                uniform: &u,
                acc: &a_learn,
                state: state_ref.as_ref(),
                global: &g_learn,
                acc_c: acc_c_ref.as_ref(),
                clients,
            },
            learnable,
        )?];
        if words > learnable {
            // Buffers (batch norm statistics) are averaged whatever the server rule.
            let tail = (words - learnable) as u64;
            server.push(fedavg::dispatch(
                &mut k,
                &ServerBindings {
                    uniform: &u,
                    acc: &a.words(learnable as u64, tail),
                    state: None,
                    global: &g.words(learnable as u64, tail),
                    acc_c: None,
                    clients,
                },
                tail as usize,
            )?);
        }
        // The step holds the global model between rounds: evals and checkpoints read it.
        server.push(Dispatch::copy(gpu, "fed_global_to_client", &g, &params));
        gpu.take_error()?;
        Ok(Federation {
            aggregator,
            clients,
            learnable,
            words,
            global,
            state,
            controls,
            uniform,
            begin,
            end,
            server,
        })
    }

    /// The aggregator.
    pub fn aggregator(&self) -> Aggregator {
        self.aggregator
    }

    /// Starts client `slot`'s local training: the global model into the step, gradients
    /// and optimizer state zeroed (every client starts its optimizer afresh), the step's
    /// counters reset.
    pub fn begin_client(&self, gpu: &Gpu, step: &mut TrainStep, slot: u32) -> Result<(), GpuError> {
        self.check_slot(slot)?;
        self.write_uniform(
            gpu,
            FedUniform {
                slot,
                ..FedUniform::default()
            },
        )?;
        gpu.submit_dispatches(&self.begin)?;
        step.reset_counters(gpu)?;
        gpu.take_error()
    }

    /// Ends client `slot`'s local training: its update, weighted by `weight`, joins the
    /// round's sum. SCAFFOLD also updates the client's control variate from its `steps`
    /// local optimizer steps at learning rate `lr`.
    pub fn end_client(
        &self,
        gpu: &Gpu,
        slot: u32,
        weight: f32,
        steps: u64,
        lr: f32,
    ) -> Result<(), GpuError> {
        self.check_slot(slot)?;
        let client_scale = if steps > 0 && lr > 0.0 {
            1.0 / (steps as f32 * lr)
        } else {
            0.0
        };
        self.write_uniform(
            gpu,
            FedUniform {
                weight,
                inv_total: 0.0,
                client_scale,
                slot,
            },
        )?;
        gpu.submit_dispatches(&self.end)?;
        gpu.take_error()
    }

    /// Ends the round: the server rule moves the global model by the sum divided by
    /// `total_weight`, and the step holds the new global model.
    pub fn aggregate(&self, gpu: &Gpu, total_weight: f32) -> Result<(), GpuError> {
        let inv_total = if total_weight > 0.0 {
            1.0 / total_weight
        } else {
            0.0
        };
        self.write_uniform(
            gpu,
            FedUniform {
                inv_total,
                ..FedUniform::default()
            },
        )?;
        gpu.submit_dispatches(&self.server)?;
        gpu.take_error()
    }

    /// The dispatches of a round's three phases, for plans: client start, client end,
    /// server step.
    pub fn dispatches(&self) -> [Vec<DispatchInfo>; 3] {
        let infos = |d: &[Dispatch]| d.iter().map(|d| d.info().clone()).collect();
        [infos(&self.begin), infos(&self.end), infos(&self.server)]
    }

    /// Server state and client controls for checkpoints: `federated.{state}` (`[P]`) and
    /// `federated.client_controls` (`[clients, P]`).
    pub fn state_tensors(&self, gpu: &Gpu) -> Result<Vec<NamedTensor>, GpuError> {
        let mut out = Vec::new();
        if let Some(s) = &self.state {
            let flat = gpu.read_f32(&BufferRef::whole(s))?;
            for (k, name) in self.aggregator.server_state().iter().enumerate() {
                out.push(NamedTensor {
                    name: format!("federated.{name}"),
                    shape: vec![self.learnable],
                    data: flat[k * self.learnable..(k + 1) * self.learnable].to_vec(),
                });
            }
        }
        if let Some(c) = &self.controls {
            out.push(NamedTensor {
                name: "federated.client_controls".into(),
                shape: vec![self.clients as usize, self.learnable],
                data: gpu.read_f32(&BufferRef::whole(c))?,
            });
        }
        Ok(out)
    }

    /// Restores [`Federation::state_tensors`] and sets the global model to `step`'s
    /// current parameters (restored from the same checkpoint).
    pub fn load_state(
        &self,
        gpu: &Gpu,
        step: &TrainStep,
        tensors: &[NamedTensor],
    ) -> Result<(), GpuError> {
        let find = |name: &str, shape: &[usize]| {
            tensors
                .iter()
                .find(|t| t.name == name)
                .filter(|t| t.shape == shape && t.data.len() == shape.iter().product::<usize>())
                .ok_or_else(|| GpuError::ParamMismatch {
                    name: name.to_string(),
                    message: format!("missing, or not of shape {shape:?}"),
                })
        };
        if let Some(s) = &self.state {
            for (k, name) in self.aggregator.server_state().iter().enumerate() {
                let t = find(&format!("federated.{name}"), &[self.learnable])?;
                gpu.write(s, (k * self.learnable * 4) as u64, &t.data)?;
            }
        }
        if let Some(c) = &self.controls {
            let t = find(
                "federated.client_controls",
                &[self.clients as usize, self.learnable],
            )?;
            gpu.write(c, 0, &t.data)?;
        }
        let params = step.buffers().params.words(0, self.words as u64);
        gpu.submit_dispatches([&Dispatch::copy(
            gpu,
            "fed_init_global",
            &params,
            &BufferRef::whole(&self.global),
        )])?;
        gpu.take_error()
    }

    /// The global model's words (tests).
    pub fn global_words(&self, gpu: &Gpu) -> Result<Vec<f32>, GpuError> {
        gpu.read_f32(&BufferRef::whole(&self.global))
    }

    fn check_slot(&self, slot: u32) -> Result<(), GpuError> {
        if slot < self.clients {
            Ok(())
        } else {
            Err(GpuError::InvalidConfig(format!(
                "client {slot} is outside the federation of {} clients",
                self.clients
            )))
        }
    }

    fn write_uniform(&self, gpu: &Gpu, u: FedUniform) -> Result<(), GpuError> {
        gpu.write(&self.uniform, 0, &[u])
    }
}

/// The natively implemented kernels of federated rounds (the cpu backend; see `crate::native`).
pub(crate) static NATIVE_KERNELS: &[(&str, crate::gpu::cpu::NativeFactory)] = &[
    ("fed_client_delta", native_client_delta),
    ("fedavg", fedavg::native),
    ("fedavgm", fedavgm::native),
    ("fedprox", fedprox::native),
    ("fedadam", fedadam::native),
    ("fedyogi", fedyogi::native),
    ("fedadagrad", fedadagrad::native),
    ("scaffold", scaffold::native),
    ("scaffold_client", scaffold::native_client),
    ("scaffold_correct", scaffold::native_correct),
];

/// Binding `i` of a native kernel as the federated uniform (as `Io::step` reads `Step`).
fn native_fed(io: &crate::gpu::cpu::Io<'_>, i: usize) -> FedUniform {
    let words = io.u32(i);
    let n = std::mem::size_of::<FedUniform>() / 4;
    bytemuck::pod_read_unaligned(bytemuck::cast_slice(&words[..n]))
}

/// How many of the `pieces` pieces of an element-wise native kernel over `n` words rayon
/// keeps together (all of them, on the calling thread, when `n` is small).
fn native_min_len(n: usize) -> usize {
    let piece = crate::native::ELEMENTS_PER_PIECE;
    crate::gpu::cpu::min_pieces(n.div_ceil(piece), n)
}

/// The native (cpu backend) `fed_client_delta`: `acc += weight * (params - global)`, in
/// fixed pieces on rayon's threads.
fn native_client_delta(c: &crate::gpu::cpu::Constants) -> crate::elementwise::NativeResult {
    Ok(Box::new(NativeClientDelta { n: c.usize("N")? }))
}

struct NativeClientDelta {
    n: usize,
}

impl crate::gpu::cpu::NativeKernel for NativeClientDelta {
    fn bindings(&self) -> (usize, usize) {
        (4, 4)
    }

    fn writes(&self, i: usize) -> bool {
        i == 3
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let n = self.n;
        let weight = native_fed(io, 0).weight;
        let piece = crate::native::ELEMENTS_PER_PIECE;
        io.f32_mut(3)[..n]
            .par_chunks_mut(piece)
            .zip(io.f32(1)[..n].par_chunks(piece))
            .zip(io.f32(2)[..n].par_chunks(piece))
            .with_min_len(native_min_len(n))
            .for_each(|((acc, p), g)| {
                for ((a, &p), &g) in acc.iter_mut().zip(p).zip(g) {
                    *a += weight * (p - g);
                }
            });
    }
}

/// The native (cpu backend) adaptive server step (`fedadam`, `fedyogi`, `fedadagrad`):
/// the WGSL's update per word with the rule's `second(v, d, beta2)`, in fixed pieces on
/// rayon's threads. `state` holds m in its first half and v in its second.
fn native_adaptive<F>(c: &crate::gpu::cpu::Constants, second: F) -> crate::elementwise::NativeResult
where
    F: Fn(f32, f32, f32) -> f32 + Send + Sync + 'static,
{
    Ok(Box::new(NativeAdaptive {
        n: c.usize("N")?,
        a: Adaptive {
            lr: c.f32_bits("LR")?,
            beta1: c.f32_bits("BETA1")?,
            beta2: c.f32_bits("BETA2")?,
            tau: c.f32_bits("TAU")?,
        },
        second,
    }))
}

struct NativeAdaptive<F> {
    n: usize,
    a: Adaptive,
    second: F,
}

impl<F: Fn(f32, f32, f32) -> f32 + Send + Sync> crate::gpu::cpu::NativeKernel
    for NativeAdaptive<F>
{
    fn bindings(&self) -> (usize, usize) {
        (4, 4)
    }

    fn writes(&self, i: usize) -> bool {
        i >= 1
    }

    fn run(&self, io: &crate::gpu::cpu::Io<'_>) {
        use rayon::prelude::*;
        let n = self.n;
        let inv_total = native_fed(io, 0).inv_total;
        let acc = &mut io.f32_mut(1)[..n];
        let (m, v) = io.f32_mut(2)[..2 * n].split_at_mut(n);
        let global = &mut io.f32_mut(3)[..n];
        let a = self.a;
        let piece = crate::native::ELEMENTS_PER_PIECE;
        acc.par_chunks_mut(piece)
            .zip(global.par_chunks_mut(piece))
            .zip(m.par_chunks_mut(piece).zip(v.par_chunks_mut(piece)))
            .with_min_len(native_min_len(n))
            .for_each(|((acc, g), (m, v))| {
                for (((acc, g), m), v) in acc.iter_mut().zip(g).zip(m).zip(v) {
                    let d = *acc * inv_total;
                    *acc = 0.0;
                    *m = a.beta1 * *m + (1.0 - a.beta1) * d;
                    *v = (self.second)(*v, d, a.beta2);
                    *g += a.lr * *m / (v.sqrt() + a.tau);
                }
            });
    }
}
