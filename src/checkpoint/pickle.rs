//! A restricted unpickler: exactly the opcodes and globals a PyTorch state dict needs.
//!
//! Python's pickle is a small stack machine whose `GLOBAL` + `REDUCE` opcodes call any
//! importable function; that is how a malicious checkpoint runs code. This reader never calls
//! anything: globals are resolved against a fixed allowlist (`collections.OrderedDict`,
//! `torch._utils._rebuild_tensor_v2` and friends, the `torch.*Storage` types) into inert
//! markers, and `REDUCE` on those markers builds plain values. Everything else is refused.
//!
//! Resource bounds, so a hostile stream cannot exhaust memory or the stack:
//! every length is checked against the bytes actually left before anything is allocated;
//! containers are reference-counted, so `BINGET` of a memoised value is O(1) and "memo
//! doubling" builds no copies; nesting depth is capped (which also bounds recursive drops);
//! shallow copies made when a shared container is mutated count against a work budget that
//! is proportional to the input length.
//!
//! Containers are copy-on-write, except that the memo's own references are set aside while
//! the container on top of the stack is filled, so a later `BINGET` sees the filled object as
//! in Python. One departure remains: a container mutated while it is also held inside another
//! container is copied, so the other container keeps the earlier state (only self-referencing
//! structures do that; it also means no reference cycles can be built).
use std::collections::HashMap;
use std::rc::Rc;

use candle_core::DType;

/// Deepest container nesting accepted (a state dict needs about 5).
pub const MAX_DEPTH: u32 = 64;

/// Why a pickle stream was refused, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError {
    /// Byte offset of the opcode that failed, from the start of this pickle stream.
    pub offset: usize,
    pub reason: String,
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pickle byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for PickleError {}

/// The element types of torch storages that map onto a candle dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageType {
    Float,
    Double,
    Half,
    BFloat16,
    Long,
    Int,
    Short,
    Byte,
    Bool,
}

impl StorageType {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Self::Float,
            "DoubleStorage" => Self::Double,
            "HalfStorage" => Self::Half,
            "BFloat16Storage" => Self::BFloat16,
            "LongStorage" => Self::Long,
            "IntStorage" => Self::Int,
            "ShortStorage" => Self::Short,
            "ByteStorage" => Self::Byte,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }

    /// Bytes per element in the file.
    pub fn element_size(self) -> usize {
        match self {
            Self::Double | Self::Long => 8,
            Self::Float | Self::Int => 4,
            Self::Half | Self::BFloat16 | Self::Short => 2,
            Self::Byte | Self::Bool => 1,
        }
    }

    /// The candle dtype holding these elements unchanged (bool as 0/1 bytes).
    pub fn dtype(self) -> DType {
        match self {
            Self::Float => DType::F32,
            Self::Double => DType::F64,
            Self::Half => DType::F16,
            Self::BFloat16 => DType::BF16,
            Self::Long => DType::I64,
            Self::Int => DType::I32,
            Self::Short => DType::I16,
            Self::Byte | Self::Bool => DType::U8,
        }
    }
}

/// The only globals a state dict may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensor,
    RebuildParameter,
    Storage(StorageType),
}

impl Global {
    fn resolve(module: &str, name: &str) -> Option<Self> {
        match (module, name) {
            ("collections", "OrderedDict") => Some(Self::OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2") => Some(Self::RebuildTensorV2),
            ("torch._utils", "_rebuild_tensor") => Some(Self::RebuildTensor),
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                Some(Self::RebuildParameter)
            }
            ("torch", storage) => StorageType::from_name(storage).map(Self::Storage),
            _ => None,
        }
    }
}

/// A storage named by a persistent id: `numel` elements starting `offset` elements into the
/// root storage `key` of `root_numel` elements (views of legacy files have an offset).
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    pub storage_type: StorageType,
    pub key: String,
    pub root_numel: usize,
    pub offset: usize,
    pub numel: usize,
}

/// A tensor as `_rebuild_tensor_v2` describes it; the data is fetched later, bounds-checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub storage_offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Seq {
    pub items: Vec<Value>,
    depth: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    pub items: Vec<(Value, Value)>,
    depth: u32,
}

/// An unpickled value. Containers are shared (`Rc`) as Python shares them through the memo.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<Seq>),
    List(Rc<Seq>),
    Dict(Rc<Map>),
    Global(Global),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    fn depth(&self) -> u32 {
        match self {
            Value::Tuple(s) | Value::List(s) => s.depth,
            Value::Dict(m) => m.depth,
            _ => 0,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }

    /// Items of a tuple or list.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(s) | Value::List(s) => Some(&s.items),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i128> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i128),
            _ => None,
        }
    }
}

/// Identity of a mutable container (list or dict) for the memo bookkeeping.
fn container_ptr(v: &Value) -> Option<usize> {
    match v {
        Value::List(s) => Some(Rc::as_ptr(s) as *const () as usize),
        Value::Dict(m) => Some(Rc::as_ptr(m) as *const () as usize),
        _ => None,
    }
}

fn new_seq(items: Vec<Value>) -> Result<Rc<Seq>, String> {
    let depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
    check_depth(depth)?;
    Ok(Rc::new(Seq { items, depth }))
}

fn check_depth(depth: u32) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("containers nested deeper than {MAX_DEPTH} levels"));
    }
    Ok(())
}

/// Turns a persistent id (the tuple torch writes for each storage) into a value.
pub trait PersistentLoad {
    fn persistent_load(&mut self, pid: &Value) -> Result<Value, String>;
}

/// Parses the persistent id torch writes for a storage, in both formats:
/// `('storage', StorageType, key, location, numel)` plus, in legacy files, `view_metadata`
/// (`None` or `(view_key, offset, size)`).
pub fn parse_storage_pid(pid: &Value) -> Result<StorageRef, String> {
    let items = pid
        .as_seq()
        .ok_or_else(|| format!("persistent id is a {}, not a tuple", pid.kind()))?;
    if !(5..=6).contains(&items.len()) || items[0].as_str() != Some("storage") {
        return Err("persistent id is not a ('storage', type, key, location, numel) tuple".into());
    }
    let storage_type = match items[1] {
        Value::Global(Global::Storage(t)) => t,
        ref other => {
            return Err(format!(
                "persistent id names a {} as storage type",
                other.kind()
            ));
        }
    };
    let key = items[2]
        .as_str()
        .ok_or("storage key is not a string")?
        .to_string();
    let numel = to_usize(&items[4], "storage size")?;
    let mut storage = StorageRef {
        storage_type,
        key,
        root_numel: numel,
        offset: 0,
        numel,
    };
    if let Some(view) = items.get(5).filter(|v| **v != Value::None) {
        let view = view
            .as_seq()
            .filter(|v| v.len() == 3)
            .ok_or("storage view metadata is not a (key, offset, size) tuple")?;
        let offset = to_usize(&view[1], "storage view offset")?;
        let size = to_usize(&view[2], "storage view size")?;
        let end = offset
            .checked_add(size)
            .filter(|&end| end <= numel)
            .ok_or("storage view extends past its storage")?;
        debug_assert!(end <= numel);
        storage.offset = offset;
        storage.numel = size;
    }
    Ok(storage)
}

fn to_usize(v: &Value, what: &str) -> Result<usize, String> {
    let i = v
        .as_int()
        .ok_or_else(|| format!("{what} is a {}, not an int", v.kind()))?;
    usize::try_from(i).map_err(|_| format!("{what} {i} is out of range"))
}

fn int_tuple(v: &Value, what: &str) -> Result<Vec<usize>, String> {
    let items = v
        .as_seq()
        .ok_or_else(|| format!("{what} is a {}, not a tuple", v.kind()))?;
    items.iter().map(|i| to_usize(i, what)).collect()
}

/// Calls an allowlisted global. Nothing here runs user-supplied code: each arm builds a value.
fn reduce(callable: &Value, args: &Value) -> Result<Value, String> {
    let global = match callable {
        Value::Global(g) => *g,
        other => return Err(format!("REDUCE on a {}, not a callable", other.kind())),
    };
    let args = args.as_seq().ok_or("REDUCE arguments are not a tuple")?;
    match global {
        Global::OrderedDict if args.is_empty() => Ok(Value::Dict(Rc::new(Map {
            items: Vec::new(),
            depth: 1,
        }))),
        Global::OrderedDict => Err("OrderedDict called with arguments".into()),
        Global::RebuildTensorV2 | Global::RebuildTensor => {
            let expected = if global == Global::RebuildTensor {
                4..=4
            } else {
                6..=7
            };
            if !expected.contains(&args.len()) {
                return Err(format!("tensor rebuild with {} arguments", args.len()));
            }
            let storage = match &args[0] {
                Value::Storage(s) => (**s).clone(),
                other => return Err(format!("tensor rebuilt from a {}", other.kind())),
            };
            let tensor = TensorRef {
                storage,
                storage_offset: to_usize(&args[1], "tensor storage offset")?,
                shape: int_tuple(&args[2], "tensor size")?,
                stride: int_tuple(&args[3], "tensor stride")?,
            };
            if tensor.shape.len() != tensor.stride.len() {
                return Err(format!(
                    "tensor has {} sizes but {} strides",
                    tensor.shape.len(),
                    tensor.stride.len()
                ));
            }
            Ok(Value::Tensor(Rc::new(tensor)))
        }
        // (data, requires_grad, backward_hooks[, state]): the parameter is its data.
        Global::RebuildParameter => match args.first() {
            Some(t @ Value::Tensor(_)) if (3..=4).contains(&args.len()) => Ok(t.clone()),
            _ => Err("parameter rebuilt from something other than a tensor".into()),
        },
        Global::Storage(_) => Err("a storage type called as a function".into()),
    }
}

mod op {
    pub const PROTO: u8 = 0x80;
    pub const FRAME: u8 = 0x95;
    pub const STOP: u8 = b'.';
    pub const MARK: u8 = b'(';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const NONE: u8 = b'N';
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const LONG1: u8 = 0x8a;
    pub const BINFLOAT: u8 = b'G';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const BINSTRING: u8 = b'T';
    pub const BINUNICODE: u8 = b'X';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const BINBYTES: u8 = b'B';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const TUPLE: u8 = b't';
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const EMPTY_LIST: u8 = b']';
    pub const LIST: u8 = b'l';
    pub const APPEND: u8 = b'a';
    pub const APPENDS: u8 = b'e';
    pub const EMPTY_DICT: u8 = b'}';
    pub const DICT: u8 = b'd';
    pub const SETITEM: u8 = b's';
    pub const SETITEMS: u8 = b'u';
    pub const GLOBAL: u8 = b'c';
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const REDUCE: u8 = b'R';
    pub const BUILD: u8 = b'b';
    pub const BINPERSID: u8 = b'Q';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const MEMOIZE: u8 = 0x94;
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
}

struct Machine<'a, P: PersistentLoad> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    /// Memo indices holding each list or dict, by the address of its shared allocation.
    memo_refs: HashMap<usize, Vec<u32>>,
    persistent: &'a mut P,
    /// Elements copied when a shared container is mutated; capped to stop quadratic blow-up.
    copy_budget: usize,
}

/// Unpickles one object from the start of `data`; returns it and the number of bytes read.
pub fn unpickle<P: PersistentLoad>(
    data: &[u8],
    persistent: &mut P,
) -> Result<(Value, usize), PickleError> {
    let mut m = Machine {
        data,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        memo_refs: HashMap::new(),
        persistent,
        copy_budget: data.len().saturating_mul(4).saturating_add(1 << 16),
    };
    loop {
        let at = m.pos;
        match m.step() {
            Ok(Some(v)) => return Ok((v, m.pos)),
            Ok(None) => {}
            Err(reason) => return Err(PickleError { offset: at, reason }),
        }
    }
}

impl<P: PersistentLoad> Machine<'_, P> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                format!(
                    "truncated: needs {n} more bytes, {} left",
                    self.data.len() - self.pos
                )
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    /// A length-prefixed payload; `take` refuses lengths beyond the remaining input.
    fn sized(&mut self, len: u64) -> Result<&[u8], String> {
        let len = usize::try_from(len).map_err(|_| format!("length {len} is out of range"))?;
        self.take(len)
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = &self.data[self.pos..];
        let nl = rest
            .iter()
            .take(256)
            .position(|&b| b == b'\n')
            .ok_or("GLOBAL name without a newline within 256 bytes")?;
        let s = std::str::from_utf8(&rest[..nl]).map_err(|_| "GLOBAL name is not UTF-8")?;
        self.pos += nl + 1;
        Ok(s.to_string())
    }

    fn text(bytes: &[u8]) -> Result<Value, String> {
        let s = std::str::from_utf8(bytes).map_err(|_| "string is not valid UTF-8")?;
        Ok(Value::Str(Rc::from(s)))
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn pop(&mut self) -> Result<Value, String> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err("stack underflow".into());
        }
        Ok(self.stack.pop().unwrap())
    }

    fn top_mut(&mut self) -> Result<&mut Value, String> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err("stack underflow".into());
        }
        Ok(self.stack.last_mut().unwrap())
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let mark = self.marks.pop().ok_or("no MARK on the stack")?;
        Ok(self.stack.split_off(mark))
    }

    fn charge(&mut self, copied: usize) -> Result<(), String> {
        self.copy_budget = self
            .copy_budget
            .checked_sub(copied)
            .ok_or("too much copying of shared containers (memo abuse)")?;
        Ok(())
    }

    /// Appends to the list on top of the stack (see [`Self::mutate_top`]).
    fn extend_list(&mut self, items: Vec<Value>) -> Result<(), String> {
        let add_depth = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        check_depth(add_depth)?;
        self.mutate_top(|top| {
            let Value::List(list) = top else {
                return Err("APPEND to something that is not a list".into());
            };
            let copied = if Rc::strong_count(list) > 1 {
                list.items.len()
            } else {
                0
            };
            let list = Rc::make_mut(list);
            list.items.extend(items);
            list.depth = list.depth.max(add_depth);
            Ok(copied)
        })
    }

    /// Sets items of the dict on top of the stack (see [`Self::mutate_top`]).
    fn extend_dict(&mut self, flat: Vec<Value>) -> Result<(), String> {
        if !flat.len().is_multiple_of(2) {
            return Err("SETITEMS with an odd number of values".into());
        }
        let add_depth = 1 + flat.iter().map(Value::depth).max().unwrap_or(0);
        check_depth(add_depth)?;
        self.mutate_top(|top| {
            let Value::Dict(dict) = top else {
                return Err("SETITEM on something that is not a dict".into());
            };
            let copied = if Rc::strong_count(dict) > 1 {
                dict.items.len()
            } else {
                0
            };
            let dict = Rc::make_mut(dict);
            let mut it = flat.into_iter();
            // Repeated keys are kept here (a linear search per item would be quadratic on a
            // hostile stream); readers of the dict let the last one win, as Python does.
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                dict.items.push((k, v));
            }
            dict.depth = dict.depth.max(add_depth);
            Ok(copied)
        })
    }

    /// Mutates the container on top of the stack. Its memo entries are taken out first and
    /// put back afterwards, so the memo sees the mutation (as Python's shared objects would)
    /// without forcing a copy. Only a container also held elsewhere (inside another container,
    /// or twice on the stack) is copied; `mutate` returns how many elements it copied, which
    /// is charged to the budget.
    fn mutate_top(
        &mut self,
        mutate: impl FnOnce(&mut Value) -> Result<usize, String>,
    ) -> Result<(), String> {
        let ptr = container_ptr(self.top_mut()?);
        let mut parked = Vec::new();
        for i in ptr
            .and_then(|p| self.memo_refs.remove(&p))
            .unwrap_or_default()
        {
            // An index may since have been overwritten with another value.
            if self.memo.get(&i).and_then(container_ptr) == ptr {
                self.memo.remove(&i);
                parked.push(i);
            }
        }
        let copied = mutate(self.top_mut()?)?;
        for i in parked {
            self.memo_put(i)?;
        }
        self.charge(copied)
    }

    fn memo_put(&mut self, index: u32) -> Result<(), String> {
        let v = self.top_mut()?.clone();
        if let Some(p) = container_ptr(&v) {
            self.memo_refs.entry(p).or_default().push(index);
        }
        self.memo.insert(index, v);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<(), String> {
        let v = self
            .memo
            .get(&index)
            .ok_or_else(|| format!("memo entry {index} was never stored"))?
            .clone();
        self.push(v);
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), String> {
        let g = Global::resolve(module, name).ok_or_else(|| {
            format!("refused global {module}.{name}: not a tensor, storage or OrderedDict (nothing was executed)")
        })?;
        self.push(Value::Global(g));
        Ok(())
    }

    /// Executes one opcode; `Some(value)` at STOP.
    fn step(&mut self) -> Result<Option<Value>, String> {
        let code = self.u8()?;
        match code {
            op::PROTO => {
                let v = self.u8()?;
                if v > 5 {
                    return Err(format!("unsupported pickle protocol {v}"));
                }
            }
            op::FRAME => {
                self.u64()?;
            }
            op::STOP => {
                let v = self.pop()?;
                if !self.stack.is_empty() || !self.marks.is_empty() {
                    return Err("values left on the stack at STOP".into());
                }
                return Ok(Some(v));
            }
            op::MARK => self.marks.push(self.stack.len()),
            op::POP => {
                self.pop()?;
            }
            op::POP_MARK => {
                self.pop_mark()?;
            }
            op::DUP => {
                let v = self.top_mut()?.clone();
                self.push(v);
            }
            op::NONE => self.push(Value::None),
            op::NEWTRUE => self.push(Value::Bool(true)),
            op::NEWFALSE => self.push(Value::Bool(false)),
            op::BININT => {
                let v = self.u32()? as i32;
                self.push(Value::Int(v.into()));
            }
            op::BININT1 => {
                let v = self.u8()?;
                self.push(Value::Int(v.into()));
            }
            op::BININT2 => {
                let v = self.u16()?;
                self.push(Value::Int(v.into()));
            }
            op::LONG1 => {
                let n = self.u8()? as usize;
                if n > 16 {
                    return Err(format!("integer of {n} bytes is too large"));
                }
                let bytes = self.take(n)?;
                let mut buf = if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
                    [0xffu8; 16]
                } else {
                    [0u8; 16]
                };
                buf[..n].copy_from_slice(bytes);
                self.push(Value::Int(i128::from_le_bytes(buf)));
            }
            op::BINFLOAT => {
                let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                self.push(Value::Float(v));
            }
            op::SHORT_BINUNICODE => {
                let n = self.u8()?;
                let v = Self::text(self.sized(n.into())?)?;
                self.push(v);
            }
            op::BINUNICODE => {
                let n = self.u32()?;
                let v = Self::text(self.sized(n.into())?)?;
                self.push(v);
            }
            op::BINUNICODE8 => {
                let n = self.u64()?;
                let v = Self::text(self.sized(n)?)?;
                self.push(v);
            }
            // Python-2 byte strings: torch's own files never contain them, but older pickles
            // of keys may; decoded as UTF-8 like `encoding="utf-8"` does.
            op::SHORT_BINSTRING => {
                let n = self.u8()?;
                let v = Self::text(self.sized(n.into())?)?;
                self.push(v);
            }
            op::BINSTRING => {
                let n = self.u32()?;
                let v = Self::text(self.sized(n.into())?)?;
                self.push(v);
            }
            op::SHORT_BINBYTES => {
                let n = self.u8()?;
                let v = Value::Bytes(Rc::from(self.sized(n.into())?));
                self.push(v);
            }
            op::BINBYTES => {
                let n = self.u32()?;
                let v = Value::Bytes(Rc::from(self.sized(n.into())?));
                self.push(v);
            }
            op::EMPTY_TUPLE => self.push(Value::Tuple(new_seq(Vec::new())?)),
            op::TUPLE => {
                let items = self.pop_mark()?;
                self.push(Value::Tuple(new_seq(items)?));
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = (code - op::TUPLE1 + 1) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push(Value::Tuple(new_seq(items)?));
            }
            op::EMPTY_LIST => self.push(Value::List(new_seq(Vec::new())?)),
            op::LIST => {
                let items = self.pop_mark()?;
                self.push(Value::List(new_seq(items)?));
            }
            op::APPEND => {
                let v = self.pop()?;
                self.extend_list(vec![v])?;
            }
            op::APPENDS => {
                let items = self.pop_mark()?;
                self.extend_list(items)?;
            }
            op::EMPTY_DICT => self.push(Value::Dict(Rc::new(Map {
                items: Vec::new(),
                depth: 1,
            }))),
            op::DICT => {
                let flat = self.pop_mark()?;
                self.push(Value::Dict(Rc::new(Map {
                    items: Vec::new(),
                    depth: 1,
                })));
                self.extend_dict(flat)?;
            }
            op::SETITEM => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.extend_dict(vec![k, v])?;
            }
            op::SETITEMS => {
                let flat = self.pop_mark()?;
                self.extend_dict(flat)?;
            }
            op::GLOBAL => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(&module, &name)?;
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (module.as_str(), name.as_str()) {
                    (Some(m), Some(n)) => self.global(m, n)?,
                    _ => return Err("STACK_GLOBAL with non-string names".into()),
                }
            }
            op::REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let v = reduce(&callable, &args)?;
                self.push(v);
            }
            op::BUILD => {
                // `obj.__setstate__(state)`: an OrderedDict's state is its `_metadata`
                // attribute (module versions), which a reader of weights does not need.
                let _state = self.pop()?;
                match self.top_mut()? {
                    Value::Dict(_) | Value::Tensor(_) => {}
                    other => return Err(format!("BUILD on a {}", other.kind())),
                }
            }
            op::BINPERSID => {
                let pid = self.pop()?;
                let v = self.persistent.persistent_load(&pid)?;
                self.push(v);
            }
            op::BINPUT => {
                let i = self.u8()?;
                self.memo_put(i.into())?;
            }
            op::LONG_BINPUT => {
                let i = self.u32()?;
                self.memo_put(i)?;
            }
            op::MEMOIZE => {
                let i = u32::try_from(self.memo.len()).map_err(|_| "memo too large")?;
                self.memo_put(i)?;
            }
            op::BINGET => {
                let i = self.u8()?;
                self.memo_get(i.into())?;
            }
            op::LONG_BINGET => {
                let i = self.u32()?;
                self.memo_get(i)?;
            }
            other => {
                return Err(format!(
                    "opcode 0x{other:02x} ({:?}) is not allowed in a state dict",
                    other as char
                ));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoPersistent;
    impl PersistentLoad for NoPersistent {
        fn persistent_load(&mut self, _: &Value) -> Result<Value, String> {
            Err("no persistent ids here".into())
        }
    }

    fn load(bytes: &[u8]) -> Result<Value, PickleError> {
        unpickle(bytes, &mut NoPersistent).map(|(v, _)| v)
    }

    #[test]
    fn long1_reads_the_torch_magic_number() {
        // pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)
        let bytes = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19\x2e";
        assert_eq!(load(bytes).unwrap(), Value::Int(0x1950a86a20f9469cfc6c));
        // Negative LONG1 values are two's complement, sign-extended: -300 is d4 fe.
        assert_eq!(load(b"\x8a\x02\xd4\xfe.").unwrap(), Value::Int(-300));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut bytes = vec![0x80, 2];
        bytes.extend(std::iter::repeat_n(b']', 100_000));
        bytes.extend(std::iter::repeat_n(b'a', 99_999));
        bytes.push(b'.');
        let err = load(&bytes).unwrap_err();
        assert!(err.reason.contains("nested deeper"), "{err}");
    }

    #[test]
    fn memo_index_far_away_allocates_nothing() {
        assert!(load(b"]r\xff\xff\xff\xffj\xff\xff\xff\xff.").is_err()); // two values left
        let err = load(b"j\xfe\xff\xff\xff.").unwrap_err();
        assert!(err.reason.contains("never stored"), "{err}");
    }
}
