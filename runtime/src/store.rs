//! The tensor store: every tensor a run owns, addressed by handle.
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
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u32);

/// Device memory a store's tensors can be mirrored in (the CUDA back end's; a host double in
/// tests). Addresses stay valid while the memory lives.
pub trait DeviceMemory {
    /// `n` zeroed values for tensor `name`; its device address.
    fn alloc(&mut self, name: &str, n: usize) -> Result<u64, RunError>;
    fn upload(&mut self, dst: u64, src: &[f32]) -> Result<(), RunError>;
    /// Copies device memory to the host once everything queued before has run.
    fn download(&mut self, src: u64, dst: &mut [f32]) -> Result<(), RunError>;
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
    data: Box<[f32]>,
    device: Option<u64>,
    current: Current,
}

pub struct Store {
    /// Distinguishes stores, so that a program compiled against one never runs on another.
    id: u64,
    tensors: Vec<Tensor>,
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
        Store { id: NEXT.fetch_add(1, Ordering::Relaxed), tensors: Vec::new(), device: None }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// A new zero-filled tensor. Names label tensors for messages and lookups; tensors a
    /// program keeps to itself (a batch) may share a name with another program's.
    pub fn alloc(&mut self, name: &str, shape: &[usize]) -> Result<TensorId, RunError> {
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let n = n.ok_or_else(|| RunError::new(Code::OutOfMemory, format!("tensor `{name}` {shape:?} is too large")))?;
        let mut data = Vec::new();
        data.try_reserve_exact(n).map_err(|_| {
            RunError::new(
                Code::OutOfMemory,
                format!("out of memory for tensor `{name}` {shape:?} ({} MB)", (n * 4) >> 20),
            )
            .help("use a smaller batch or data set")
        })?;
        data.resize(n, 0.0);
        self.tensors.push(Tensor {
            name: name.to_string(),
            shape: shape.to_vec(),
            data: data.into_boxed_slice(),
            device: None,
            current: Current::Host,
        });
        Ok(TensorId(self.tensors.len() as u32 - 1))
    }

    /// The tensor named `name` (the first of that name), created zero-filled if there is none.
    /// An existing tensor must have `shape`.
    pub fn shared(&mut self, name: &str, shape: &[usize]) -> Result<TensorId, RunError> {
        match self.find(name) {
            Some(id) if self.shape(id) == shape => Ok(id),
            Some(id) => Err(RunError::new(
                Code::Internal,
                format!("tensor `{name}` is {:?}, a program needs {shape:?}", self.shape(id)),
            )),
            None => self.alloc(name, shape),
        }
    }

    /// Renames tensor `name` and those named after it (`name.mask`, `name.exp_avg`) so that
    /// `find` and `shared` no longer see them: a model shrunk mid-run gets new tensors of its
    /// new shapes under the old names. The memory stays (programs compiled before may still
    /// hold its address).
    pub fn retire(&mut self, name: &str) {
        let family = format!("{name}.");
        for t in self.tensors.iter_mut().filter(|t| t.name == name || t.name.starts_with(&family)) {
            t.name = format!("{} (retired)", t.name);
        }
    }

    pub fn find(&self, name: &str) -> Option<TensorId> {
        self.tensors.iter().position(|t| t.name == name).map(|i| TensorId(i as u32))
    }

    pub fn name(&self, id: TensorId) -> &str {
        &self.tensors[id.0 as usize].name
    }

    pub fn shape(&self, id: TensorId) -> &[usize] {
        &self.tensors[id.0 as usize].shape
    }

    pub fn len(&self, id: TensorId) -> usize {
        self.tensors[id.0 as usize].data.len()
    }

    /// Copies `data` into the tensor.
    pub fn write(&mut self, id: TensorId, data: &[f32]) -> Result<(), RunError> {
        let t = &mut self.tensors[id.0 as usize];
        if t.data.len() != data.len() {
            return Err(RunError::new(
                Code::Internal,
                format!("tensor `{}` holds {} values, given {}", t.name, t.data.len(), data.len()),
            ));
        }
        t.data.copy_from_slice(data);
        t.current = Current::Host;
        Ok(())
    }

    pub fn set_scalar(&mut self, id: TensorId, value: f32) -> Result<(), RunError> {
        self.write(id, &[value])
    }

    pub fn fill(&mut self, id: TensorId, value: f32) {
        let t = &mut self.tensors[id.0 as usize];
        t.data.fill(value);
        t.current = Current::Host;
    }

    /// The tensor's values, for the host to read (downloaded first where a device program
    /// changed them).
    pub fn read(&mut self, id: TensorId) -> Result<&[f32], RunError> {
        self.download_if_changed(id)?;
        Ok(&self.tensors[id.0 as usize].data)
    }

    pub fn scalar(&mut self, id: TensorId) -> Result<f32, RunError> {
        Ok(self.read(id)?.first().copied().unwrap_or(f32::NAN))
    }

    /// The address of the tensor's first element, for CPU programs. It stays valid while the
    /// store lives: tensors never move. (A store runs the programs of one back end.)
    pub(crate) fn address(&mut self, id: TensorId) -> Result<*mut f32, RunError> {
        self.download_if_changed(id)?;
        Ok(self.tensors[id.0 as usize].data.as_mut_ptr())
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
            let (name, n) = (self.tensors[id.0 as usize].name.clone(), self.tensors[id.0 as usize].data.len());
            let memory = self.device.as_deref_mut().ok_or_else(no_device)?;
            let address = memory.alloc(&name, n)?;
            let t = &mut self.tensors[id.0 as usize];
            t.device = Some(address);
            // Zeros on both sides: nothing to upload unless the host wrote.
            if t.data.iter().all(|&x| x.to_bits() == 0) {
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
        memory.upload(address, &self.tensors[i].data)?;
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
        memory.download(address, &mut self.tensors[i].data)?;
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
    fn tensors_keep_their_addresses_and_shapes() {
        let mut s = Store::new();
        let a = s.alloc("a", &[2, 3]).unwrap();
        let p = s.address(a).unwrap();
        for i in 0..100 {
            s.alloc(&format!("t{i}"), &[1000]).unwrap();
        }
        assert_eq!(s.address(a).unwrap(), p, "a tensor moved when others were added");
        assert_eq!(s.shared("a", &[2, 3]).unwrap(), a);
        assert!(s.shared("a", &[6]).is_err());
        s.write(a, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(s.read(a).unwrap()[5], 6.0);
        assert!(s.write(a, &[1.0]).is_err());
        assert!(s.alloc("huge", &[usize::MAX, 2]).is_err());
    }

    /// Allocations, then uploads and downloads so far.
    type Copies = (Vec<Vec<f32>>, usize, usize);

    /// Device memory in host vectors, counting the copies.
    #[derive(Default)]
    struct HostDouble {
        buffers: std::rc::Rc<std::cell::RefCell<Copies>>,
    }

    impl DeviceMemory for HostDouble {
        fn alloc(&mut self, _: &str, n: usize) -> Result<u64, RunError> {
            let mut b = self.buffers.borrow_mut();
            b.0.push(vec![0.0; n]);
            Ok(b.0.len() as u64 - 1)
        }
        fn upload(&mut self, dst: u64, src: &[f32]) -> Result<(), RunError> {
            let mut b = self.buffers.borrow_mut();
            b.0[dst as usize].copy_from_slice(src);
            b.1 += 1;
            Ok(())
        }
        fn download(&mut self, src: u64, dst: &mut [f32]) -> Result<(), RunError> {
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
        let (w, zeros) = (s.alloc("w", &[3]).unwrap(), s.alloc("m", &[2]).unwrap());
        s.write(w, &[1.0, 2.0, 3.0]).unwrap();
        let dw = s.device_address(w).unwrap();
        let dm = s.device_address(zeros).unwrap();
        assert_eq!(copies(), (1, 0), "the weight uploaded once, the zeros not at all");
        s.upload_if_changed(w).unwrap();
        assert_eq!(copies(), (1, 0));
        // A device program updates the weight in place.
        shared.borrow_mut().0[dw as usize][1] = 20.0;
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
        assert_eq!(shared.borrow().0[dm as usize], vec![0.5, 0.5]);
    }
}
