//! The tensor store: every tensor a run owns, addressed by handle, and found by its role (a
//! parameter, its mask, an optimizer state, a per-step number: `hoyer_ir::Role`). Tensors
//! hold float32 numbers or 32-bit integers (labels, token ids, index lists).
//!
//! Parameters, masks, optimizer state, the resident data set, per-step scalars (learning
//! rate, bias corrections, where the batch starts) and the running loss sums live here for
//! the whole run. Compiled programs bind their buffers to these tensors once, when they are
//! compiled, so a step is a fixed sequence of kernel launches over fixed addresses; the step
//! for a smaller last batch and the evaluation programs bind the same parameter tensors, so
//! switching between them copies nothing. The host reads a tensor only when it needs it
//! (`read`): at a report, a prune, a checkpoint.
//!
//! Tensors are allocated once and never move or shrink while the store lives (a compiled
//! program holds their addresses). On the GPU (`attach_device`) a tensor a program binds
//! also gets device memory, and the store tracks which copy is current: a program's run
//! uploads what the host changed (a learning rate, an epoch's index list) and marks what it
//! wrote as current on the device; `read` downloads only what the device changed since. So
//! parameters, optimizer state and the data set stay on the device, and the host sees them
//! only where it reads them: a report, a prune, a checkpoint.

use crate::error::RunError;
use hoyer_front::codes::Code;
use hoyer_ir::{Dtype, Role};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u32);

/// Device memory a store's tensors can be mirrored in (the CUDA back end's; a host double in
/// tests). Addresses stay valid while the memory lives.
pub trait DeviceMemory {
    /// `bytes` zeroed bytes for tensor `name`; its device address.
    fn alloc(&mut self, name: &str, bytes: usize) -> Result<u64, RunError>;
    fn upload(&mut self, dst: u64, src: &[u8]) -> Result<(), RunError>;
    /// Copies device memory to the host once everything queued before has run.
    fn download(&mut self, src: u64, dst: &mut [u8]) -> Result<(), RunError>;
}

/// Which copy of a tensor holds its current values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Current {
    Host,
    Device,
    Both,
}

struct Tensor {
    name: String,
    shape: Vec<usize>,
    dtype: Dtype,
    /// The elements as 32-bit words (float32 or i32, as `dtype` says).
    words: Box<[u32]>,
    device: Option<u64>,
    current: Current,
}

impl Tensor {
    fn bytes(&self) -> &[u8] {
        // SAFETY: u32 words viewed as their bytes (no padding; u8 has no alignment).
        unsafe { std::slice::from_raw_parts(self.words.as_ptr() as *const u8, self.words.len() * 4) }
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above; every byte pattern is a valid u32.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr() as *mut u8, self.words.len() * 4) }
    }
}

pub struct Store {
    /// Distinguishes stores, so that a program compiled against one never runs on another.
    id: u64,
    tensors: Vec<Tensor>,
    /// The tensor of each role; a role a shrink retired has none until it is made again.
    roles: HashMap<Role, TensorId>,
    device: Option<Box<dyn DeviceMemory>>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    pub fn new() -> Store {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Store { id: NEXT.fetch_add(1, Ordering::Relaxed), tensors: Vec::new(), roles: HashMap::new(), device: None }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// A new zero-filled tensor of its own (a batch, a resident data set); `name` labels it in
    /// messages.
    pub fn alloc(&mut self, name: &str, shape: &[usize], dtype: Dtype) -> Result<TensorId, RunError> {
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let n = n.ok_or_else(|| RunError::new(Code::OutOfMemory, format!("tensor `{name}` {shape:?} is too large")))?;
        let mut words = Vec::new();
        words.try_reserve_exact(n).map_err(|_| {
            RunError::new(
                Code::OutOfMemory,
                format!("out of memory for tensor `{name}` {shape:?} ({} MB)", (n * 4) >> 20),
            )
            .help("use a smaller batch or data set")
        })?;
        words.resize(n, 0);
        self.tensors.push(Tensor {
            name: name.to_string(),
            shape: shape.to_vec(),
            dtype,
            words: words.into_boxed_slice(),
            device: None,
            current: Current::Host,
        });
        Ok(TensorId(self.tensors.len() as u32 - 1))
    }

    /// The tensor of `role`, created zero-filled if there is none. An existing one must have
    /// `shape` and `dtype`.
    pub fn shared(&mut self, role: &Role, shape: &[usize], dtype: Dtype) -> Result<TensorId, RunError> {
        match self.find(role) {
            Some(id) if self.shape(id) == shape && self.dtype(id) == dtype => Ok(id),
            Some(id) => Err(RunError::new(
                Code::Internal,
                format!("tensor `{role}` is {}{:?}, a program needs {dtype}{shape:?}", self.dtype(id), self.shape(id)),
            )),
            None => {
                let id = self.alloc(&role.to_string(), shape, dtype)?;
                self.roles.insert(role.clone(), id);
                Ok(id)
            }
        }
    }

    /// A float32 tensor of `role` (see `shared`).
    pub fn shared_f32(&mut self, role: &Role, shape: &[usize]) -> Result<TensorId, RunError> {
        self.shared(role, shape, Dtype::F32)
    }

    /// Forgets the tensors of parameter `param` (its value, mask, optimizer states), so that
    /// `find` and `shared` no longer see them: a model shrunk mid-run gets new tensors of its
    /// new shapes for the same roles. The memory stays (programs compiled before may still
    /// hold its address).
    pub fn retire(&mut self, param: &str) {
        let gone: Vec<Role> = self.roles.keys().filter(|r| r.of_param() == Some(param)).cloned().collect();
        for role in gone {
            if let Some(id) = self.roles.remove(&role) {
                let t = &mut self.tensors[id.0 as usize];
                t.name = format!("{} (retired)", t.name);
            }
        }
    }

    pub fn find(&self, role: &Role) -> Option<TensorId> {
        self.roles.get(role).copied()
    }

    pub fn name(&self, id: TensorId) -> &str {
        &self.tensors[id.0 as usize].name
    }

    pub fn shape(&self, id: TensorId) -> &[usize] {
        &self.tensors[id.0 as usize].shape
    }

    pub fn dtype(&self, id: TensorId) -> Dtype {
        self.tensors[id.0 as usize].dtype
    }

    pub fn len(&self, id: TensorId) -> usize {
        self.tensors[id.0 as usize].words.len()
    }

    fn expect(&self, id: TensorId, dtype: Dtype, given: usize) -> Result<(), RunError> {
        let t = &self.tensors[id.0 as usize];
        if t.dtype != dtype || t.words.len() != given {
            return Err(RunError::new(
                Code::Internal,
                format!("tensor `{}` holds {} {} values, given {given} {dtype}", t.name, t.words.len(), t.dtype),
            ));
        }
        Ok(())
    }

    /// Copies float32 `data` into the tensor.
    pub fn write(&mut self, id: TensorId, data: &[f32]) -> Result<(), RunError> {
        self.expect(id, Dtype::F32, data.len())?;
        let t = &mut self.tensors[id.0 as usize];
        t.words.iter_mut().zip(data).for_each(|(w, x)| *w = x.to_bits());
        t.current = Current::Host;
        Ok(())
    }

    /// Copies integer `data` into the tensor.
    pub fn write_i32(&mut self, id: TensorId, data: &[i32]) -> Result<(), RunError> {
        self.expect(id, Dtype::I32, data.len())?;
        let t = &mut self.tensors[id.0 as usize];
        t.words.iter_mut().zip(data).for_each(|(w, &x)| *w = x as u32);
        t.current = Current::Host;
        Ok(())
    }

    pub fn set_scalar(&mut self, id: TensorId, value: f32) -> Result<(), RunError> {
        self.write(id, &[value])
    }

    /// Sets every element to `value` (float32 tensors).
    pub fn fill(&mut self, id: TensorId, value: f32) {
        let t = &mut self.tensors[id.0 as usize];
        debug_assert_eq!(t.dtype, Dtype::F32, "fill of {}", t.name);
        t.words.fill(value.to_bits());
        t.current = Current::Host;
    }

    /// The tensor's float32 values, for the host to read (downloaded first where a device
    /// program changed them).
    pub fn read(&mut self, id: TensorId) -> Result<&[f32], RunError> {
        let words = self.words_of(id, Dtype::F32)?;
        // SAFETY: a float32 tensor's words are float32 bit patterns, and f32 and u32 have
        // the same size and alignment.
        Ok(unsafe { std::slice::from_raw_parts(words.as_ptr() as *const f32, words.len()) })
    }

    /// The tensor's integers (see `read`).
    pub fn read_i32(&mut self, id: TensorId) -> Result<&[i32], RunError> {
        let words = self.words_of(id, Dtype::I32)?;
        // SAFETY: i32 and u32 have the same size and alignment, and every pattern is valid.
        Ok(unsafe { std::slice::from_raw_parts(words.as_ptr() as *const i32, words.len()) })
    }

    /// The words of a tensor of `dtype`, current on the host.
    fn words_of(&mut self, id: TensorId, dtype: Dtype) -> Result<&[u32], RunError> {
        self.download_if_changed(id)?;
        let t = &self.tensors[id.0 as usize];
        if t.dtype != dtype {
            return Err(RunError::new(Code::Internal, format!("tensor `{}` holds {}, not {dtype}", t.name, t.dtype)));
        }
        Ok(&t.words)
    }

    pub fn scalar(&mut self, id: TensorId) -> Result<f32, RunError> {
        Ok(self.read(id)?.first().copied().unwrap_or(f32::NAN))
    }

    /// The address of the tensor's first element, for CPU programs (an integer tensor's too:
    /// its kernels read it as i32). It stays valid while the store lives: tensors never
    /// move. (A store runs the programs of one back end.)
    pub(crate) fn address(&mut self, id: TensorId) -> Result<*mut f32, RunError> {
        self.download_if_changed(id)?;
        Ok(self.tensors[id.0 as usize].words.as_mut_ptr() as *mut f32)
    }

    /// Mirrors tensors in `memory` from now on (see the module's comment). A store has one
    /// device; attaching again keeps the first.
    pub fn attach_device(&mut self, memory: Box<dyn DeviceMemory>) {
        if self.device.is_none() {
            self.device = Some(memory);
        }
    }

    /// The tensor's device address, for device programs: its device copy made current.
    pub(crate) fn device_address(&mut self, id: TensorId) -> Result<u64, RunError> {
        if self.tensors[id.0 as usize].device.is_none() {
            let (name, n) = (self.tensors[id.0 as usize].name.clone(), self.tensors[id.0 as usize].words.len());
            let memory = self.device.as_deref_mut().ok_or_else(no_device)?;
            let address = memory.alloc(&name, n * 4)?;
            let t = &mut self.tensors[id.0 as usize];
            t.device = Some(address);
            // Zeros on both sides: nothing to upload unless the host wrote.
            if t.words.iter().all(|&x| x == 0) {
                t.current = Current::Both;
            }
        }
        self.upload_if_changed(id)?;
        Ok(self.tensors[id.0 as usize].device.unwrap_or(0))
    }

    /// Uploads the tensor where the host changed it since the device last had it.
    pub(crate) fn upload_if_changed(&mut self, id: TensorId) -> Result<(), RunError> {
        let i = id.0 as usize;
        let (Some(address), Current::Host) = (self.tensors[i].device, self.tensors[i].current) else { return Ok(()) };
        let memory = self.device.as_deref_mut().ok_or_else(no_device)?;
        memory.upload(address, self.tensors[i].bytes())?;
        self.tensors[i].current = Current::Both;
        Ok(())
    }

    /// A device program wrote the tensor: the host copy is stale.
    pub(crate) fn written_on_device(&mut self, id: TensorId) {
        self.tensors[id.0 as usize].current = Current::Device;
    }

    fn download_if_changed(&mut self, id: TensorId) -> Result<(), RunError> {
        let i = id.0 as usize;
        let (Some(address), Current::Device) = (self.tensors[i].device, self.tensors[i].current) else { return Ok(()) };
        let memory = self.device.as_deref_mut().ok_or_else(no_device)?;
        memory.download(address, self.tensors[i].bytes_mut())?;
        self.tensors[i].current = Current::Both;
        Ok(())
    }
}

fn no_device() -> RunError {
    RunError::new(Code::Internal, "the store has no device memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_keep_their_addresses_shapes_and_types() {
        let mut s = Store::new();
        let role = Role::param("a");
        let a = s.shared_f32(&role, &[2, 3]).unwrap();
        let p = s.address(a).unwrap();
        for i in 0..100 {
            s.alloc(&format!("t{i}"), &[1000], Dtype::F32).unwrap();
        }
        assert_eq!(s.address(a).unwrap(), p, "a tensor moved when others were added");
        assert_eq!(s.shared_f32(&role, &[2, 3]).unwrap(), a);
        assert!(s.shared_f32(&role, &[6]).is_err());
        assert!(s.shared(&role, &[2, 3], Dtype::I32).is_err());
        s.write(a, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(s.read(a).unwrap()[5], 6.0);
        assert!(s.write(a, &[1.0]).is_err());
        assert!(s.write_i32(a, &[1; 6]).is_err(), "integers into a float32 tensor");
        assert!(s.alloc("huge", &[usize::MAX, 2], Dtype::F32).is_err());
        let labels = s.alloc("labels", &[3], Dtype::I32).unwrap();
        s.write_i32(labels, &[7, -1, 1 << 30]).unwrap();
        assert_eq!(s.read_i32(labels).unwrap(), &[7, -1, 1 << 30]);
        assert!(s.read(labels).is_err());
        // A retired parameter's roles are gone; its memory stays where it was.
        let mask = s.shared_f32(&Role::Mask("a".into()), &[2, 3]).unwrap();
        s.retire("a");
        assert_eq!((s.find(&role), s.find(&Role::Mask("a".into()))), (None, None));
        assert_ne!(s.shared_f32(&role, &[1, 3]).unwrap(), a);
        assert_eq!(s.read(mask).unwrap().len(), 6);
    }

    /// Allocations, then uploads and downloads so far.
    type Copies = (Vec<Vec<u8>>, usize, usize);

    /// Device memory in host vectors, counting the copies.
    #[derive(Default)]
    struct HostDouble {
        buffers: std::rc::Rc<std::cell::RefCell<Copies>>,
    }

    impl DeviceMemory for HostDouble {
        fn alloc(&mut self, _: &str, n: usize) -> Result<u64, RunError> {
            let mut b = self.buffers.borrow_mut();
            b.0.push(vec![0; n]);
            Ok(b.0.len() as u64 - 1)
        }
        fn upload(&mut self, dst: u64, src: &[u8]) -> Result<(), RunError> {
            let mut b = self.buffers.borrow_mut();
            b.0[dst as usize].copy_from_slice(src);
            b.1 += 1;
            Ok(())
        }
        fn download(&mut self, src: u64, dst: &mut [u8]) -> Result<(), RunError> {
            let mut b = self.buffers.borrow_mut();
            dst.copy_from_slice(&b.0[src as usize]);
            b.2 += 1;
            Ok(())
        }
    }

    /// What the host writes is uploaded once before a device program needs it; what a
    /// device program writes is downloaded once when the host reads it; nothing else moves.
    #[test]
    fn each_copy_moves_only_when_the_other_side_changed_it() {
        let device = HostDouble::default();
        let shared = device.buffers.clone();
        let copies = || (shared.borrow().1, shared.borrow().2);
        let mut s = Store::new();
        s.attach_device(Box::new(device));
        let (w, zeros) = (s.alloc("w", &[3], Dtype::F32).unwrap(), s.alloc("m", &[2], Dtype::F32).unwrap());
        s.write(w, &[1.0, 2.0, 3.0]).unwrap();
        let dw = s.device_address(w).unwrap();
        let dm = s.device_address(zeros).unwrap();
        assert_eq!(copies(), (1, 0), "the weight uploaded once, the zeros not at all");
        s.upload_if_changed(w).unwrap();
        assert_eq!(copies(), (1, 0));
        // A device program updates the weight in place.
        shared.borrow_mut().0[dw as usize][4..8].copy_from_slice(&20.0f32.to_ne_bytes());
        s.written_on_device(w);
        assert_eq!(s.read(w).unwrap(), &[1.0, 20.0, 3.0]);
        assert_eq!(s.read(w).unwrap(), &[1.0, 20.0, 3.0]);
        assert_eq!(copies(), (1, 1), "downloaded once");
        assert_eq!(s.read(zeros).unwrap(), &[0.0, 0.0]);
        // The host sets a scalar: uploaded before the next device use, once.
        s.fill(zeros, 0.5);
        s.upload_if_changed(zeros).unwrap();
        s.upload_if_changed(zeros).unwrap();
        assert_eq!(copies(), (2, 1));
        assert_eq!(shared.borrow().0[dm as usize], [0.5f32.to_ne_bytes(), 0.5f32.to_ne_bytes()].concat());
    }
}
