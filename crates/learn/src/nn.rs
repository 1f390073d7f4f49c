//! burn pieces shared by the neural models: the MLP of the `stats-mlp` and `flat-mlp`
//! baselines, and saving/loading any burn module's parameters as safetensors (names are the
//! module paths, e.g. `layers.0.weight`).

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData, activation::relu};
use weightspace_io::Checkpoint;

use crate::error::{Error, Result};

/// A ReLU MLP: `in → hidden × depth → out`.
#[derive(Module, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    /// A fresh MLP (burn's default init, from the device's seeded RNG).
    pub fn new(inp: usize, hidden: usize, depth: usize, out: usize, device: &Device) -> Mlp {
        let mut layers = Vec::new();
        let mut d = inp;
        for _ in 0..depth {
            layers.push(LinearConfig::new(d, hidden).init(device));
            d = hidden;
        }
        layers.push(LinearConfig::new(d, out).init(device));
        Mlp { layers }
    }

    /// `[batch, in]` → `[batch, out]`.
    pub fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(x);
            if i < last {
                x = relu(x);
            }
        }
        x
    }
}

/// Reads a float tensor back to the host.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor data")
}

/// A `[rows, cols]` tensor from host values.
pub fn tensor2(v: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v, [rows, cols]), device)
}

struct Collect {
    path: Vec<String>,
    out: Vec<(String, Vec<usize>, Vec<f32>)>,
}

// Paths are built from enter/exit_module, exactly as `Load` builds them, so a saved module
// always loads back.
impl ModuleVisitor for Collect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        let shape = tensor.shape().to_vec();
        self.out.push((self.path.join("."), shape, to_vec(tensor)));
    }
}

struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Draws every lazily initialised parameter of `m` now (burn initialises a `Param` on first
/// use, from its global RNG).
pub fn materialize<M: Module>(m: &M) {
    m.visit(&mut Materialize);
}

/// The module's float parameters as (path, shape, values), in visiting order.
pub fn parameters<M: Module>(m: &M) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut c = Collect {
        path: vec![],
        out: vec![],
    };
    m.visit(&mut c);
    c.out
}

/// Writes the module's parameters as safetensors (atomically) with `metadata`.
pub fn save_module<M: Module>(
    m: &M,
    path: &Path,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    weightspace_io::write_f32_safetensors(path, &parameters(m), metadata)?;
    Ok(())
}

struct Load<'a> {
    path: Vec<String>,
    ck: &'a Checkpoint,
    err: Option<Error>,
}

impl ModuleMapper for Load<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = self.path.join(".");
        let ck = self.ck;
        let want: Vec<usize> = param.lazy_shape().to_vec();
        let got = match ck.info(&name) {
            None => Err(format!("tensor `{name}` is missing")),
            Some(i) if i.shape != want => Err(format!(
                "tensor `{name}` has shape {:?}, the model needs {want:?}",
                i.shape
            )),
            Some(_) => ck.tensor_f32(&name).map_err(|e| e.to_string()),
        };
        match got {
            Ok(v) => {
                param.map(|t| Tensor::from_data(TensorData::new(v, want.clone()), &t.device()))
            }
            Err(msg) => {
                if self.err.is_none() {
                    self.err = Some(Error::Saved {
                        path: ck.path().to_path_buf(),
                        msg,
                    });
                }
                param
            }
        }
    }
}

/// Loads a module's parameters from a safetensors file written by [`save_module`].
pub fn load_module<M: Module>(m: M, path: &Path) -> Result<M> {
    let ck = Checkpoint::open(path)?;
    let mut l = Load {
        path: vec![],
        ck: &ck,
        err: None,
    };
    let m = m.map(&mut l);
    match l.err {
        Some(e) => Err(e),
        None => Ok(m),
    }
}
