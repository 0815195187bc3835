//! What the offline tools (`verify`, `recover`, `stats`, `dump`) share: a tolerant scan of a
//! store's files that finds every record and every problem without trusting a length or pointer
//! before checking it against the file, the problems themselves, record checks, the walk of the
//! trees reachable from the roots, and progress bars.
//!
//! Files are read through read-only memory maps of their real size; nothing allocates by a size
//! read from the file.

use etch_engine::lattice::hold::{self, Zone};
use etch_engine::store::cache::{CellCache, IdHash};
use etch_engine::store::cad047::{self, digit, level_slots, DATA_START, LEVEL_MAX};
use etch_engine::store::native::format::{
    frame_at, frame_crc, parse_frame_header, record_crc, records, resync, Commit, Snapshot,
    FORMAT_MAGIC, FRAME_HEADER_BYTES, KIND_COMMIT, KIND_DATA, RECORD_ENCODING_MAX,
    RECORD_HEADER_BYTES, SNAPSHOT_RECORD_BYTES,
};
use etch_engine::store::native::run::{parse_run_file_name, run_file_name, Run, RunError};
use etch_engine::store::native::RUNS_MAX;
use etch_formats::cell::{ResolveError, ENCODING_BYTES_MAX};
use etch_formats::structure::{self, Summaries, Summary};
use etch_formats::{
    decode_cell, decode_checked_cell, Cell, DecodeError, Kind as CellKind, Ref, Resolver, ValueId,
};
use indicatif::{ProgressBar, ProgressStyle};
use memmap2::Mmap;
use rayon::prelude::*;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

/// Exit status: nothing wrong.
pub const EXIT_OK: u8 = 0;
/// Exit status: problems found (damage, loss): a failed check, as any failure.
pub const EXIT_PROBLEMS: u8 = super::EXIT_FAILED;

/// A progress bar on stderr with rate and ETA, hidden when stderr is not a terminal.
pub fn bar(len: u64, what: &str, bytes: bool) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    let template = if bytes {
        format!("{what:<10} [{{bar:32}}] {{bytes}}/{{total_bytes}} {{binary_bytes_per_sec}} eta {{eta}}")
    } else {
        format!("{what:<10} [{{bar:32}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}}")
    };
    b.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// What kind of problem (the `kind` of a report line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A native FORMAT file or a CAD047 header (magic, version, data length).
    Header,
    /// A native frame: magic, kind, length, checksum.
    Frame,
    /// A native commit chain.
    Commit,
    /// The native snapshots file.
    Snapshot,
    /// Index runs (native) or index slots and blocks (CAD047).
    Index,
    /// A record's framing or label (length, flags, memory size).
    Record,
    /// A record whose encoding does not hash to its key.
    Hash,
    /// A record whose encoding is not one canonical cell.
    Encoding,
    /// A cell reachable from a root (or promised by a PERSISTED label) that is not stored.
    Missing,
    /// A stage-B rule between a cell and its children.
    Structure,
    /// A file shorter than the store says it is.
    Truncated,
}

impl Kind {
    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Header => "header",
            Kind::Frame => "frame",
            Kind::Commit => "commit",
            Kind::Snapshot => "snapshot",
            Kind::Index => "index",
            Kind::Record => "record",
            Kind::Hash => "hash",
            Kind::Encoding => "encoding",
            Kind::Missing => "missing",
            Kind::Structure => "structure",
            Kind::Truncated => "truncated",
        }
    }
}

/// One problem: which file, where, which Value ID (if one is concerned), what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// File name inside a native store (`log`, `snapshots`, `run-….idx`, `FORMAT`), or the
    /// CAD047 file's name.
    pub file: String,
    /// Byte offset in that file.
    pub offset: u64,
    /// The Value ID concerned, if any.
    pub id: Option<[u8; 32]>,
    /// The kind.
    pub kind: Kind,
    /// What is wrong.
    pub detail: String,
}

impl Problem {
    /// A problem without a Value ID.
    pub fn new(file: &str, offset: u64, kind: Kind, detail: impl Into<String>) -> Problem {
        Problem {
            file: file.to_string(),
            offset,
            id: None,
            kind,
            detail: detail.into(),
        }
    }

    /// The same with a Value ID.
    pub fn with_id(mut self, id: [u8; 32]) -> Problem {
        self.id = Some(id);
        self
    }

    /// One line of text.
    pub fn line(&self) -> String {
        let id = self
            .id
            .map(|i| format!(" id {}", hex::encode(i)))
            .unwrap_or_default();
        format!(
            "{} offset {} [{}]{id}: {}",
            self.file,
            self.offset,
            self.kind.name(),
            self.detail
        )
    }

    /// As a JSON object.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "file": self.file,
            "offset": self.offset,
            "id": self.id.map(hex::encode),
            "kind": self.kind.name(),
            "detail": self.detail,
        })
    }
}

/// A read-only map of a whole file (empty files have no map).
pub struct Mapped(Option<Mmap>);

impl Mapped {
    /// Maps `path`.
    pub fn open(path: &Path) -> std::io::Result<Mapped> {
        let f = std::fs::File::open(path)?;
        if f.metadata()?.len() == 0 {
            return Ok(Mapped(None));
        }
        // SAFETY: read-only map of a store that no writer may change while the tools run (they
        // run offline; a concurrent writer only appends past what was mapped).
        Ok(Mapped(Some(unsafe { Mmap::map(&f) }?)))
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}

/// Store formats the scanner knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A native directory.
    Native,
    /// A CAD047 file.
    Cad047,
}

impl Format {
    /// `native` or `cad047`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Native => "native",
            Format::Cad047 => "cad047",
        }
    }
}

/// A record found by the scan.
#[derive(Debug, Clone)]
pub struct Rec {
    /// The key / Value ID the record claims.
    pub id: [u8; 32],
    /// Offset of the record (native: of its id; CAD047: of the record) in the record file.
    pub offset: u64,
    /// Offset of the encoding in the record file.
    pub enc_at: u64,
    /// Encoding length.
    pub len: u32,
    /// CAD047 flags byte (0 for native records).
    pub flags: u8,
    /// CAD047 memory size label (0 for native records).
    pub mem: u64,
    /// True once the record checks passed (hash, canonical encoding).
    pub good: bool,
    /// What the stage-B rules read of the record's cell as a child ([`Scan::check_records`]
    /// makes it for a good record whose cell may be a branch).
    pub summary: Option<Box<Summary>>,
}

/// A root to walk from.
#[derive(Debug, Clone)]
pub struct RootRef {
    /// The root's Value ID (`None`: no root).
    pub id: Option<[u8; 32]>,
    /// Native: the commit's sequence number; CAD047: 0.
    pub seq: u64,
    /// Offset of the commit frame (native) or of the header's root field (CAD047: 12).
    pub offset: u64,
    /// Native: true when a reader recovers to this commit or an earlier one (it lies before
    /// any damage); false for commits found past damage.
    pub reachable: bool,
}

/// Everything a scan found.
pub struct Scan {
    /// The format.
    pub format: Format,
    /// Name of the file holding the records (`log` or the CAD047 file name).
    pub rec_file: String,
    /// That file, mapped.
    pub map: Mapped,
    /// Every record of the store (committed records for native), in file order until
    /// [`Scan::sort_by_id`].
    pub recs: Vec<Rec>,
    /// Native: intact-looking records past the last commit (what a crash or a truncation left
    /// uncommitted; `recover` salvages them too). Not yet checked.
    pub uncommitted: Vec<Rec>,
    /// Problems found.
    pub problems: Vec<Problem>,
    /// Observations that are not damage (an uncommitted tail, stray runs).
    pub notes: Vec<String>,
    /// Roots: native, every commit in log order; CAD047, the header's.
    pub roots: Vec<RootRef>,
    /// Bytes of the store's files.
    pub file_bytes: u64,
    /// Native: index blocks walked (CAD047) or runs checked (native).
    pub index_units: u64,
    sorted: bool,
    /// When sorted by id: for each value of an id's first [`Scan::bucket_bits`] bits, where
    /// its records start in `recs` (one more entry at the end), so a lookup reads a bucket of
    /// a record or two instead of binary-searching them all (ids are SHA3 hashes: uniform).
    buckets: Vec<u32>,
}

/// Orders Value IDs as their bytes do, comparing their first eight bytes first (which settles
/// almost every pair of hashes without a byte-by-byte compare).
fn cmp_ids(a: &[u8; 32], b: &[u8; 32]) -> std::cmp::Ordering {
    let head = |x: &[u8; 32]| u64::from_be_bytes([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]]);
    head(a).cmp(&head(b)).then_with(|| a.cmp(b))
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(w)
}

fn id_at(b: &[u8], at: usize) -> [u8; 32] {
    let mut id = [0u8; 32];
    id.copy_from_slice(&b[at..at + 32]);
    id
}

/// The format of `path` for the tools: a directory is a native store, a regular file a CAD047
/// file, whatever their magic says (a damaged magic is a problem to report, not a reason to
/// refuse).
pub fn guess_format(path: &Path) -> Result<Format, String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(Format::Native),
        Ok(_) => Ok(Format::Cad047),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            super::check_store_path(path, super::Access::Read).map(|()| Format::Native)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

impl Scan {
    /// Scans the store at `path` (structure only: records are found, not yet checked).
    pub fn run(path: &Path, show: bool) -> Result<Scan, String> {
        etch_engine::store::swap::recover_replace(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let format = guess_format(path)?;
        if let Err(e) = super::check_store_path(path, super::Access::Read) {
            // Damage can take a store's magic or FORMAT file too: read it anyway, and say so.
            eprintln!(
                "etch: {e}\netch: reading it as a damaged {} store",
                format.name()
            );
        }
        match format {
            Format::Native => scan_native(path, show),
            Format::Cad047 => scan_cad(path, show),
        }
    }

    /// Sorts the records by id (for lookups); reports keys that appear twice.
    pub fn sort_by_id(&mut self) {
        self.recs
            .par_sort_unstable_by(|a, b| cmp_ids(&a.id, &b.id).then(a.offset.cmp(&b.offset)));
        self.sorted = true;
        let bits = self.bucket_bits();
        let mut buckets = vec![0u32; (1usize << bits) + 1];
        for r in &self.recs {
            buckets[Self::bucket(&r.id, bits) + 1] += 1;
        }
        for i in 1..buckets.len() {
            buckets[i] += buckets[i - 1];
        }
        self.buckets = buckets;
    }

    /// Bits of an id that pick its bucket: about one record per bucket.
    fn bucket_bits(&self) -> u32 {
        (usize::BITS - self.recs.len().leading_zeros()).clamp(1, 28)
    }

    fn bucket(id: &[u8; 32], bits: u32) -> usize {
        let top = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        (top >> (32 - bits)) as usize
    }

    /// Sorts the records by offset (file order).
    pub fn sort_by_offset(&mut self) {
        self.recs.par_sort_unstable_by_key(|r| r.offset);
        self.sorted = false;
    }

    /// The records with this id (after [`Scan::sort_by_id`]).
    pub fn find(&self, id: &[u8; 32]) -> &[Rec] {
        &self.recs[self.find_range(id)]
    }

    /// Where the records with this id are in `recs` (after [`Scan::sort_by_id`]).
    fn find_range(&self, id: &[u8; 32]) -> std::ops::Range<usize> {
        debug_assert!(self.sorted);
        let b = Self::bucket(id, self.bucket_bits());
        let (start, end) = match (self.buckets.get(b), self.buckets.get(b + 1)) {
            (Some(&s), Some(&e)) => (s as usize, e as usize),
            _ => (0, self.recs.len()),
        };
        // About one record per bucket: a scan settles it, mostly on the ids' first eight bytes.
        let bucket = &self.recs[start..end];
        let lo = bucket
            .iter()
            .position(|r| cmp_ids(&r.id, id).is_ge())
            .unwrap_or(bucket.len());
        let hi = lo + bucket[lo..].iter().take_while(|r| r.id == *id).count();
        start + lo..start + hi
    }

    /// The index in `recs` of the first good record of `id`.
    pub fn good_index(&self, id: &[u8; 32]) -> Option<usize> {
        self.find_range(id).find(|&i| self.recs[i].good)
    }

    /// The first good record of `id`.
    pub fn good(&self, id: &[u8; 32]) -> Option<&Rec> {
        self.find(id).iter().find(|r| r.good)
    }

    /// The encoding bytes of a record.
    pub fn encoding(&self, r: &Rec) -> &[u8] {
        let at = r.enc_at as usize;
        &self.map.bytes()[at..at + r.len as usize]
    }

    /// Checks every record (hash, canonical encoding; CAD047 labels), in parallel; marks the
    /// good ones and adds a problem for each bad one. Sorts by id.
    pub fn check_records(&mut self, show: bool) {
        self.check(show, false);
    }

    /// As [`Scan::check_records`], and each good record keeps its cell's stage-B summary
    /// (`Rec::summary`), which [`walk_trees`] checks each cell's children by.
    pub fn check_records_keeping_summaries(&mut self, show: bool) {
        self.check(show, true);
    }

    fn check(&mut self, show: bool, summaries: bool) {
        let pb = bar(self.recs.len() as u64, "records", false);
        if !show {
            pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let map = self.map.bytes();
        let file = self.rec_file.clone();
        let cad = self.format == Format::Cad047;
        let results: Vec<(Vec<Problem>, Option<Box<Summary>>)> = self
            .recs
            .par_iter()
            .map(|r| {
                let enc = &map[r.enc_at as usize..r.enc_at as usize + r.len as usize];
                let mut out = Vec::new();
                let mut summary = None;
                if !cad {
                    // The record's own CRC-32C (id, length, encoding).
                    let at = r.offset as usize;
                    let stored = le_u32(map, at + 36);
                    if record_crc(&map[at..at + 32], &map[at + 32..at + 36], enc) != stored {
                        out.push(
                            Problem::new(
                                &file,
                                r.offset + 36,
                                Kind::Record,
                                "record checksum mismatch",
                            )
                            .with_id(r.id),
                        );
                    }
                }
                if ValueId::of(enc).0 != r.id {
                    out.push(
                        Problem::new(
                            &file,
                            r.offset,
                            Kind::Hash,
                            format!("the encoding hashes to {}", ValueId::of(enc)),
                        )
                        .with_id(r.id),
                    );
                } else {
                    // Keeping summaries (verify), the stage-B rules are left to `walk_trees`:
                    // it applies them to each cell it reaches against its children's
                    // summaries, and decodes the records it does not reach with every rule.
                    let decoded = if summaries {
                        decode_checked_cell(enc.to_vec())
                    } else {
                        decode_cell(enc.to_vec())
                    };
                    match decoded {
                        Ok(cell) if summaries && !cell.is_embedded() => {
                            summary = Some(Box::new(Summary::kept(&cell)));
                        }
                        Ok(_) => {}
                        Err(e) => out.push(not_canonical(&file, r, &e)),
                    }
                }
                if cad {
                    let status = r.flags & 0x0f;
                    let (emb, non) = (r.flags & 0x10 != 0, r.flags & 0x20 != 0);
                    let small = r.len as usize <= etch_formats::cell::EMBED_BYTES_MAX;
                    let bad = if status == 0 {
                        Some("status 0 (UNKNOWN) on disk".to_string())
                    } else if emb && non {
                        Some("both embedding bits set".into())
                    } else if (emb && !small) || (non && small) {
                        Some(format!(
                            "embedding bit disagrees with the length {} (flags {:02x})",
                            r.len, r.flags
                        ))
                    } else {
                        None
                    };
                    if let Some(d) = bad {
                        out.push(Problem::new(&file, r.offset + 32, Kind::Record, d).with_id(r.id));
                    }
                }
                pb.inc(1);
                (out, summary)
            })
            .collect();
        pb.finish_and_clear();
        for (r, (probs, summary)) in self.recs.iter_mut().zip(results) {
            r.summary = summary;
            r.good = !probs
                .iter()
                .any(|p| matches!(p.kind, Kind::Hash | Kind::Encoding));
            self.problems.extend(probs);
        }
        self.sort_by_id();
        let mut dups = Vec::new();
        for w in self.recs.windows(2) {
            if w[0].id == w[1].id {
                dups.push(
                    Problem::new(
                        &self.rec_file,
                        w[1].offset,
                        if cad { Kind::Index } else { Kind::Record },
                        format!("a second record of this key (the first at {})", w[0].offset),
                    )
                    .with_id(w[1].id),
                );
            }
        }
        // Native stores never write a cell twice; CAD047 keys appear once in the index (§8.8).
        self.problems.extend(dups);
    }

    /// A resolver over the good records.
    pub fn resolver(&self) -> ScanResolver<'_> {
        ScanResolver { scan: self }
    }
}

/// Resolves cells from a scan's good records (hash already checked).
pub struct ScanResolver<'a> {
    scan: &'a Scan,
}

impl ScanResolver<'_> {
    /// The cell of `id` and its record, if a good record holds it.
    pub fn get(&self, id: &[u8; 32]) -> Option<(Cell, &Rec)> {
        let at = self.scan.good_index(id)?;
        Some((self.scan.cell_at(at)?, &self.scan.recs[at]))
    }
}

impl Resolver for ScanResolver<'_> {
    fn resolve(&self, id: &ValueId) -> Result<Option<Cell>, ResolveError> {
        Ok(self.get(&id.0).map(|(c, _)| c))
    }
}

/// The walk checks each cell against its children's stage-B summaries, which
/// [`Scan::check_records`] made as it decoded each record, instead of keeping decoded cells (a
/// store's cells decoded take several times its size).
impl Summaries for Scan {
    fn branch(
        &self,
        id: &ValueId,
        _: Option<&Cell>,
    ) -> Result<Option<Cow<'_, Summary>>, DecodeError> {
        self.summary_at(id, self.good_index(&id.0))
    }
}

impl Scan {
    /// The summary of branch `id`, the good record at `at`.
    fn summary_at(
        &self,
        id: &ValueId,
        at: Option<usize>,
    ) -> Result<Option<Cow<'_, Summary>>, DecodeError> {
        let missing = || structure::resolve_error(ResolveError::Missing(*id));
        match &self
            .recs
            .get(at.ok_or_else(missing)?)
            .ok_or_else(missing)?
            .summary
        {
            Some(s) => Ok(Some(Cow::Borrowed(s))),
            // None kept (a cell that must be inline, or summaries not kept): from the cell,
            // through the ref's own checks (S2 for a cell that must be inline).
            None => Ref::unresolved(*id)
                .fetch(&self.resolver())
                .map(|c| Some(Cow::Owned(Summary::of(&c))))
                .map_err(structure::resolve_error),
        }
    }

    /// The cell of the good record at `at`, decoded with the stage-A rules only:
    /// [`Scan::check_records`] decoded it with every rule, or (keeping summaries) the walk
    /// applies the stage-B rules to it.
    fn cell_at(&self, at: usize) -> Option<Cell> {
        let r = self.recs.get(at).filter(|r| r.good)?;
        let cell = decode_checked_cell(self.encoding(r).to_vec()).ok()?;
        cell.set_known_id(ValueId(r.id));
        Some(cell)
    }
}

/// The summaries a cell's check reads: its branch children's, whose records the walk has
/// already looked up, and any other through the scan.
struct Near<'a> {
    scan: &'a Scan,
    kids: &'a [(ValueId, Option<usize>)],
    /// Where the last child asked for was in `kids`: the rules ask in encoding order.
    cursor: std::cell::Cell<usize>,
}

impl Summaries for Near<'_> {
    fn branch(
        &self,
        id: &ValueId,
        _: Option<&Cell>,
    ) -> Result<Option<Cow<'_, Summary>>, DecodeError> {
        let n = self.kids.len();
        let from = self.cursor.get();
        let found = (from..n).chain(0..from).find(|&j| {
            let k = &self.kids[j].0 .0;
            k[..8] == id.0[..8] && k == &id.0
        });
        let at = match found {
            Some(j) => {
                self.cursor.set(j + 1);
                self.kids[j].1
            }
            None => self.scan.good_index(&id.0),
        };
        self.scan.summary_at(id, at)
    }
}

/// Bytes of decoded cells a [`Remembering`] resolver keeps at most.
const REMEMBERED_BYTES_MAX: usize = 8 << 20;

/// A resolver that keeps the cells it decoded (the stores' [`CellCache`], up to
/// [`REMEMBERED_BYTES_MAX`]): the check for a partial replica's mark reads the same few cells
/// beneath every commit's root.
struct Remembering<'a> {
    res: ScanResolver<'a>,
    cells: Mutex<CellCache>,
}

impl<'a> Remembering<'a> {
    fn new(res: ScanResolver<'a>) -> Remembering<'a> {
        Remembering {
            res,
            cells: Mutex::new(CellCache::new(REMEMBERED_BYTES_MAX)),
        }
    }
}

impl Resolver for Remembering<'_> {
    fn resolve(&self, id: &ValueId) -> Result<Option<Cell>, ResolveError> {
        let locked = || self.cells.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = locked().get(id) {
            return Ok(Some(c));
        }
        let cell = self.res.get(&id.0).map(|(c, _)| c);
        if let Some(c) = &cell {
            locked().insert(c);
        }
        Ok(cell)
    }
}

/// The Value IDs of the branch cells `cell` refers to, through embedded children, in encoding
/// order.
pub fn branch_children(cell: &Cell, out: &mut Vec<ValueId>) {
    for r in cell.refs() {
        match r {
            Ref::Branch(b) => out.push(*b.id()),
            Ref::Embedded(c) => {
                if !c.refs().is_empty() {
                    branch_children(c, out);
                }
            }
        }
    }
}

/// What the walk from the roots found.
#[derive(Default)]
pub struct TreeWalk {
    /// Distinct cells reached (present and good).
    pub cells: u64,
    /// Their encoding bytes.
    pub bytes: u64,
    /// Problems (missing cells, stage-B failures).
    pub problems: Vec<Problem>,
    /// Roots of a partial replica (`--hold pinned`), walked for what it holds only.
    pub partial_roots: usize,
}

/// Walks every tree reachable from `roots`, level by level with the levels' cells checked in
/// parallel: each cell must be present in a good record. Each cell is visited once, however
/// many roots share it. Without `check_structure`, only what is reachable is found (and what is
/// missing). With it, each cell and every cell inline in it pass the stage-B rules: against
/// the children's summaries where every branch beneath the cell is present, else against the
/// inline children alone; and the good records the walk does not reach are decoded with every
/// rule. That is the stage-B check [`Scan::check_records_keeping_summaries`] leaves out, so the
/// two go together; the summaries come from it (else each is made from its cell).
/// `roots`: each root's Value ID and the offset (in the record file) where it is named.
pub fn walk_trees(
    scan: &Scan,
    roots: &[([u8; 32], u64)],
    check_structure: bool,
    show: bool,
) -> TreeWalk {
    let pb = bar(scan.recs.len() as u64, "trees", false);
    if !show {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut out = TreeWalk::default();
    // Visited: stored cells by record index; cells not stored by id.
    let mut seen_stored = vec![false; scan.recs.len()];
    let mut seen_missing: HashSet<[u8; 32], IdHash> = HashSet::default();
    let mut first_visit = |id: &[u8; 32], at: Option<usize>| match at {
        Some(i) => !std::mem::replace(&mut seen_stored[i], true),
        None => seen_missing.insert(*id),
    };
    let nil = *Cell::nil().id();
    let mut frontier: Vec<Pending> = Vec::new();
    for (r, from) in roots {
        let at = scan.good_index(r);
        if ValueId(*r) == nil && at.is_none() {
            continue; // a nil root needs no record (CAD047)
        }
        if first_visit(r, at) {
            let (id, from) = (*r, *from);
            frontier.push(Pending {
                id,
                at,
                from,
                parent: None,
                zone: None,
            });
        }
    }
    // Whether a root is a partial replica's: the cells beneath every commit's root that say.
    let marks = Remembering::new(scan.resolver());
    while !frontier.is_empty() {
        let visits: Vec<Visit> = frontier
            .par_iter()
            .map(|p| {
                let v = visit(scan, p, &marks, check_structure);
                pb.inc(1);
                v
            })
            .collect();
        let mut next = Vec::new();
        for (p, v) in frontier.iter().zip(visits) {
            out.problems.extend(v.problems);
            out.partial_roots += usize::from(v.partial);
            let Some(i) = p.at.filter(|_| v.stored) else {
                continue;
            };
            let rec = &scan.recs[i];
            out.cells += 1;
            out.bytes += u64::from(rec.len);
            let parent = Some(p.id);
            for (at, zone) in v.stored_kids {
                let at = at as usize;
                let id = scan.recs[at].id;
                if first_visit(&id, Some(at)) {
                    let (at, zone) = (Some(at), Some(zone));
                    next.push(Pending {
                        id,
                        at,
                        from: rec.offset,
                        parent,
                        zone,
                    });
                }
            }
            for (id, zone) in v.missing_kids {
                if first_visit(&id, None) {
                    let zone = Some(zone);
                    next.push(Pending {
                        id,
                        at: None,
                        from: rec.offset,
                        parent,
                        zone,
                    });
                }
            }
        }
        frontier = next;
    }
    pb.finish_and_clear();
    if check_structure {
        out.problems.extend(check_unreached(scan, &seen_stored));
    }
    out
}

/// A cell the walk is to visit: its id and record index, where the reference to it is (file
/// offset of the referring record), its parent, and its zone (`None` for a root: the visit
/// reads it). A partial replica's root (marked `:hold "pinned"`) is walked for its skeleton and
/// pins only: the values it does not hold are not missing.
struct Pending {
    id: [u8; 32],
    at: Option<usize>,
    from: u64,
    parent: Option<[u8; 32]>,
    zone: Option<Zone>,
}

/// What visiting one cell found.
struct Visit {
    /// Whether its record is there and good.
    stored: bool,
    /// A root marked as a partial replica's.
    partial: bool,
    problems: Vec<Problem>,
    /// Its held branch children that are stored (record index, zone) and that are not.
    stored_kids: Vec<(u32, Zone)>,
    missing_kids: Vec<([u8; 32], Zone)>,
}

/// Visits one cell: present in a good record, and (when its children are all present) checked
/// against their summaries by the stage-B rules.
fn visit(scan: &Scan, p: &Pending, marks: &Remembering, check_structure: bool) -> Visit {
    let file = &scan.rec_file;
    let mut v = Visit {
        stored: false,
        partial: false,
        problems: Vec::new(),
        stored_kids: Vec::new(),
        missing_kids: Vec::new(),
    };
    let Some((cell, i)) = p.at.and_then(|i| Some((scan.cell_at(i)?, i))) else {
        let damaged = scan.find(&p.id).first().map(|r| r.offset);
        let detail = match (p.parent, damaged) {
            (_, Some(at)) => format!("reachable, but its record at {at} is damaged"),
            (Some(parent), None) => format!(
                "reachable (referenced by {}) but not stored",
                hex::encode(parent)
            ),
            (None, None) => "a root, but not stored".to_string(),
        };
        v.problems
            .push(Problem::new(file, p.from, Kind::Missing, detail).with_id(p.id));
        return v;
    };
    v.stored = true;
    let zone = p.zone.unwrap_or_else(|| {
        v.partial = hold::is_partial(&cell, marks).unwrap_or(false);
        if v.partial {
            Zone::Root
        } else {
            Zone::Full
        }
    });
    let mut all = Vec::new();
    branch_children(&cell, &mut all);
    let all: Vec<(ValueId, Option<usize>)> = all
        .into_iter()
        .map(|k| (k, scan.good_index(&k.0)))
        .collect();
    let mut kid =
        |k: &ValueId, at: Option<usize>, z: Zone| match at.and_then(|at| u32::try_from(at).ok()) {
            Some(at) => v.stored_kids.push((at, z)),
            None => v.missing_kids.push((k.0, z)),
        };
    if zone == Zone::Full {
        // Every branch beneath the cell, each held whole.
        for (k, at) in &all {
            kid(k, *at, Zone::Full);
        }
    } else {
        let mut held = Vec::new();
        hold::held_branches(&cell, zone, &mut held);
        for (k, z) in held {
            let at = match all.iter().find(|(id, _)| *id == k) {
                Some(&(_, at)) => at,
                None => scan.good_index(&k.0),
            };
            kid(&k, at, z);
        }
    }
    if check_structure {
        let near = Near {
            scan,
            kids: &all,
            cursor: std::cell::Cell::new(0),
        };
        let all_stored = all.iter().all(|(_, at)| at.is_some());
        if let Err(e) = check_cell_structure(&cell, &near, all_stored) {
            v.problems.push(
                Problem::new(
                    file,
                    scan.recs[i].offset,
                    Kind::Structure,
                    format!("rule {}: {}", e.rule.name(), e.detail),
                )
                .with_id(p.id),
            );
        }
    }
    v
}

/// The stage-B rules for `cell` and every cell inline in it, inline ones first (as decoding
/// applies them; [`Scan::check_records_keeping_summaries`] left them to the walk): against the
/// children's summaries when every branch beneath `cell` is stored, else against the inline
/// children only, as decoding does (the missing ones are reported as missing).
fn check_cell_structure(cell: &Cell, near: &Near, all_stored: bool) -> Result<(), DecodeError> {
    for r in cell.refs() {
        if let Ref::Embedded(c) = r {
            if !c.refs().is_empty() {
                check_cell_structure(c, near, all_stored)?;
            }
        }
    }
    if all_stored {
        structure::check_structure_with(cell, near)
    } else {
        structure::check_structure(cell, None)
    }
}

/// Decodes, with every rule, the good records `walk_trees` did not reach: their stage-B rules
/// were left to the walk ([`Scan::check_records_keeping_summaries`]).
fn check_unreached(scan: &Scan, reached: &[bool]) -> Vec<Problem> {
    let unreached: Vec<usize> = (0..scan.recs.len())
        .filter(|&i| scan.recs[i].good && !reached[i])
        .collect();
    unreached
        .par_iter()
        .filter_map(|&i| {
            let r = &scan.recs[i];
            let e = decode_cell(scan.encoding(r).to_vec()).err()?;
            Some(not_canonical(&scan.rec_file, r, &e))
        })
        .collect()
}

/// The problem of record `r`, whose encoding does not decode: at the byte where it fails.
fn not_canonical(file: &str, r: &Rec, e: &DecodeError) -> Problem {
    Problem::new(
        file,
        r.enc_at + e.offset as u64,
        Kind::Encoding,
        format!("not a canonical cell: {e}"),
    )
    .with_id(r.id)
}

/// The bytes of every file in a directory (not recursive), or of a file.
pub fn disk_bytes(path: &Path) -> u64 {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Native

const LOG: &str = "log";
const SNAPSHOTS: &str = "snapshots";

/// A well-formed frame at `pos` (header, bounds, checksum), as (kind, payload length, total).
fn good_frame(log: &[u8], pos: usize) -> Option<(u8, usize, usize)> {
    frame_at(log, pos).map(|(h, _)| (h.kind, h.len, h.total()))
}

/// Records found by trying every offset of `bytes` (a damaged frame): `(offset, id, len)`
/// where the bytes at the offset are a record whose encoding hashes to its id.
pub fn deep_native_records(bytes: &[u8], base: u64) -> Vec<(u64, [u8; 32], u32)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + RECORD_HEADER_BYTES < bytes.len() {
        let len = le_u32(bytes, at + 32) as usize;
        let start = at + RECORD_HEADER_BYTES;
        if len > 0
            && len <= ENCODING_BYTES_MAX
            && bytes.len() - start >= len
            && etch_formats::Kind::of_tag(bytes[start]).is_some()
            && record_crc(
                &bytes[at..at + 32],
                &bytes[at + 32..at + 36],
                &bytes[start..start + len],
            ) == le_u32(bytes, at + 36)
            && ValueId::of(&bytes[start..start + len]).0 == id_at(bytes, at)
        {
            out.push((base + at as u64, id_at(bytes, at), len as u32));
            at = start + len;
        } else {
            at += 1;
        }
    }
    out
}

fn scan_native(dir: &Path, show: bool) -> Result<Scan, String> {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    // Tails that earlier writable opens set aside (FORMAT.md §5): kept until someone looks.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("log.aside-") {
                let bytes = e.metadata().map(|m| m.len()).unwrap_or(0);
                notes.push(format!(
                    "{name}: {bytes} bytes a writable open set aside after the last commit \
                     (a crash's tail); delete it once nothing there is wanted"
                ));
            }
        }
    }
    // FORMAT
    match std::fs::metadata(dir.join("FORMAT")) {
        Err(e) => problems.push(Problem::new("FORMAT", 0, Kind::Header, format!("{e}"))),
        Ok(m) if m.len() != FORMAT_MAGIC.len() as u64 => problems.push(Problem::new(
            "FORMAT",
            0,
            Kind::Header,
            format!("{} bytes, not {}", m.len(), FORMAT_MAGIC.len()),
        )),
        Ok(_) => {
            let b = std::fs::read(dir.join("FORMAT")).map_err(|e| format!("FORMAT: {e}"))?;
            if let Some(i) = b.iter().zip(FORMAT_MAGIC.iter()).position(|(x, y)| x != y) {
                problems.push(Problem::new(
                    "FORMAT",
                    i as u64,
                    Kind::Header,
                    "not the native magic and version 1",
                ));
            }
        }
    }
    let log_path = dir.join(LOG);
    let map = match Mapped::open(&log_path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            problems.push(Problem::new(LOG, 0, Kind::Truncated, "the log is missing"));
            Mapped(None)
        }
        Err(e) => return Err(format!("{}: {e}", log_path.display())),
    };
    let log = map.bytes();
    let pb = bar(log.len() as u64, "log", true);
    if !show {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut recs: Vec<Rec> = Vec::new();
    // Every valid COMMIT frame, in log order: (commit, offset).
    let mut commits: Vec<(Commit, u64)> = Vec::new();
    // Problems in the log, with their offset (classified against the last commit below).
    let mut damage: Vec<Problem> = Vec::new();
    let mut first_damage: Option<u64> = None;
    let mut pos = 0usize;
    fn push_rec(recs: &mut Vec<Rec>, off: u64, id: [u8; 32], len: u32) {
        recs.push(Rec {
            id,
            offset: off,
            enc_at: off + RECORD_HEADER_BYTES as u64,
            len,
            flags: 0,
            mem: 0,
            good: false,
            summary: None,
        })
    }
    while pos < log.len() {
        pb.set_position(pos as u64);
        if log.len() - pos < FRAME_HEADER_BYTES {
            damage.push(Problem::new(
                LOG,
                pos as u64,
                Kind::Frame,
                format!(
                    "{} bytes at the end, less than a frame header",
                    log.len() - pos
                ),
            ));
            first_damage.get_or_insert(pos as u64);
            break;
        }
        let head = &log[pos..pos + FRAME_HEADER_BYTES];
        let Some(h) = parse_frame_header(head) else {
            let next = resync(log, pos + 8);
            damage.push(Problem::new(
                LOG,
                pos as u64,
                Kind::Frame,
                format!(
                    "no valid frame header (magic, kind or length); {} bytes skipped",
                    next - pos
                ),
            ));
            first_damage.get_or_insert(pos as u64);
            // Salvage records in the skipped bytes.
            for (o, id, len) in deep_native_records(&log[pos..next], pos as u64) {
                push_rec(&mut recs, o, id, len);
            }
            pos = next;
            continue;
        };
        let end = pos.saturating_add(h.total());
        if end > log.len() {
            damage.push(Problem::new(
                LOG,
                pos as u64,
                Kind::Truncated,
                format!(
                    "a frame of {} bytes runs past the end of the log ({} bytes)",
                    h.total(),
                    log.len()
                ),
            ));
            first_damage.get_or_insert(pos as u64);
            if h.kind == KIND_DATA {
                for (o, id, len) in deep_native_records(
                    &log[pos + FRAME_HEADER_BYTES..],
                    (pos + FRAME_HEADER_BYTES) as u64,
                ) {
                    push_rec(&mut recs, o, id, len);
                }
            }
            break;
        }
        let payload = &log[pos + FRAME_HEADER_BYTES..pos + FRAME_HEADER_BYTES + h.len];
        let crc_ok = frame_crc(head, payload) == h.crc;
        if !crc_ok {
            damage.push(Problem::new(
                LOG,
                pos as u64,
                Kind::Frame,
                format!("frame checksum mismatch ({} payload bytes)", h.len),
            ));
            first_damage.get_or_insert(pos as u64);
        }
        let pbase = (pos + FRAME_HEADER_BYTES) as u64;
        if h.kind == KIND_DATA {
            match records(payload) {
                Some(rs) => {
                    for (off, id, enc) in rs {
                        push_rec(&mut recs, pbase + off as u64, id, enc.len() as u32);
                    }
                }
                None => {
                    damage.push(Problem::new(
                        LOG,
                        pbase,
                        Kind::Record,
                        "the records do not tile the frame's payload",
                    ));
                    first_damage.get_or_insert(pos as u64);
                    for (o, id, len) in deep_native_records(payload, pbase) {
                        push_rec(&mut recs, o, id, len);
                    }
                }
            }
        } else if h.kind == KIND_COMMIT && crc_ok {
            match Commit::decode(payload) {
                None => {
                    damage.push(Problem::new(
                        LOG,
                        pos as u64,
                        Kind::Commit,
                        "a commit frame whose fields are out of range",
                    ));
                    first_damage.get_or_insert(pos as u64);
                }
                Some(c) => {
                    let ok = match commits.last() {
                        None => c.seq == 1 && c.prev_commit == u64::MAX,
                        Some((p, paddr)) => {
                            p.seq.checked_add(1) == Some(c.seq) && c.prev_commit == *paddr
                        }
                    };
                    let mut why = Vec::new();
                    if !ok {
                        why.push(format!(
                            "commit {} does not follow commit {} (previous at {})",
                            c.seq,
                            commits.last().map_or(0, |p| p.0.seq),
                            commits.last().map_or(u64::MAX, |p| p.1)
                        ));
                    }
                    if c.log_end != end as u64 {
                        why.push(format!(
                            "log_end {} is not the frame's end {end}",
                            c.log_end
                        ));
                    }
                    if c.indexed_end > pos as u64 {
                        why.push(format!("indexed_end {} is past the commit", c.indexed_end));
                    }
                    if !why.is_empty() {
                        damage.push(Problem::new(LOG, pos as u64, Kind::Commit, why.join("; ")));
                        first_damage.get_or_insert(pos as u64);
                    }
                    commits.push((c, pos as u64));
                }
            }
        }
        // A damaged frame's length may be wrong too: go on at the next frame that checks out.
        pos = if !crc_ok && good_frame(log, end).is_none() {
            let next = resync(log, end.min(pos + 8));
            if h.kind == KIND_DATA && next > end {
                for (o, id, len) in deep_native_records(&log[end..next], end as u64) {
                    push_rec(&mut recs, o, id, len);
                }
            }
            next
        } else {
            end
        };
    }
    pb.finish_and_clear();
    let log_len = log.len() as u64;
    let committed_end = commits.last().map_or(0, |(c, _)| c.log_end);

    // The snapshots file: a hint that must agree with the log.
    let mut listed_end = 0u64;
    match Mapped::open(&dir.join(SNAPSHOTS)) {
        Err(e) => problems.push(Problem::new(SNAPSHOTS, 0, Kind::Snapshot, format!("{e}"))),
        Ok(sm) => {
            let b = sm.bytes();
            let n = b.len() / SNAPSHOT_RECORD_BYTES;
            let by_addr: HashMap<u64, Commit> = commits.iter().map(|(c, a)| (*a, *c)).collect();
            let mut prev_seq = 0u64;
            for i in 0..n {
                let at = i * SNAPSHOT_RECORD_BYTES;
                let chunk = &b[at..at + SNAPSHOT_RECORD_BYTES];
                let Some(s) = Snapshot::decode(chunk) else {
                    if i + 1 == n {
                        notes.push(format!(
                            "snapshots: the last record (at {at}) is torn; a writable open drops it"
                        ));
                    } else {
                        problems.push(Problem::new(
                            SNAPSHOTS,
                            at as u64,
                            Kind::Snapshot,
                            "snapshot record with a bad magic or checksum",
                        ));
                    }
                    continue;
                };
                if s.commit.seq <= prev_seq {
                    problems.push(Problem::new(
                        SNAPSHOTS,
                        at as u64,
                        Kind::Snapshot,
                        format!("commit {} listed after commit {prev_seq}", s.commit.seq),
                    ));
                }
                prev_seq = s.commit.seq;
                listed_end = listed_end.max(s.commit.log_end);
                match by_addr.get(&s.commit_addr) {
                    Some(c) if *c == s.commit => {}
                    _ if s.commit.log_end > log_len => problems.push(Problem::new(
                        LOG,
                        log_len,
                        Kind::Truncated,
                        format!(
                            "the log ends at {log_len} but commit {} (listed in snapshots at {at}) ends at {}",
                            s.commit.seq, s.commit.log_end
                        ),
                    )),
                    _ => problems.push(Problem::new(
                        SNAPSHOTS,
                        at as u64,
                        Kind::Snapshot,
                        format!(
                            "commit {} at log offset {} is not in the log",
                            s.commit.seq, s.commit_addr
                        ),
                    )),
                }
            }
            if b.len() % SNAPSHOT_RECORD_BYTES != 0 {
                notes.push(
                    "snapshots: a partial record at the end (a writable open drops it)".into(),
                );
            }
        }
    }
    // Damage before the last commit (or before what the snapshots list) loses data; past it,
    // it is the torn or uncommitted tail a crash leaves, which a writable open cuts off.
    let keep_end = committed_end.max(listed_end.min(log_len));
    for d in damage {
        if d.offset < keep_end {
            problems.push(d);
        } else {
            notes.push(format!("uncommitted tail: {}", d.line()));
        }
    }
    let tail: Vec<&Rec> = recs.iter().filter(|r| r.offset >= committed_end).collect();
    if !tail.is_empty() {
        notes.push(format!(
            "{} records after the last commit (at {committed_end}) are uncommitted: a writable open cuts them off",
            tail.len()
        ));
    }
    // Salvage after damage may meet a record twice (a damaged length spanning later frames).
    recs.sort_by_key(|r| r.offset);
    recs.dedup_by_key(|r| r.offset);
    let (recs, uncommitted): (Vec<Rec>, Vec<Rec>) =
        recs.into_iter().partition(|r| r.offset < committed_end);
    let before_damage = |a: u64| first_damage.is_none_or(|d| a < d);
    let roots: Vec<RootRef> = commits
        .iter()
        .map(|(c, a)| RootRef {
            id: c.root,
            seq: c.seq,
            offset: *a,
            reachable: before_damage(*a),
        })
        .collect();
    let lost_commit =
        first_damage.and_then(|d| commits.iter().find(|(_, a)| *a > d).map(|c| (d, c)));
    if let Some((d, lost)) = lost_commit {
        if lost.1 < keep_end {
            problems.push(Problem::new(
                LOG,
                lost.1,
                Kind::Commit,
                format!(
                    "commits from {} on lie past the damage at {d}: opening the store recovers to an earlier commit",
                    lost.0.seq
                ),
            ));
        }
    }

    // Index runs of the commit a reader opens at.
    let head = commits
        .iter()
        .rev()
        .find(|(_, a)| before_damage(*a))
        .map(|(c, _)| *c);
    let mut index_units = 0;
    let mut live_runs = Vec::new();
    let by_offset: HashMap<u64, [u8; 32]> = recs.iter().map(|r| (r.offset, r.id)).collect();
    if let Some(h) = head {
        let mut next = h.run_head;
        let mut covers_prev: Option<u64> = None;
        while next != 0 {
            let name = run_file_name(next);
            if live_runs.contains(&next) || live_runs.len() >= RUNS_MAX {
                problems.push(Problem::new(
                    &name,
                    16,
                    Kind::Index,
                    "the run list loops or is too long",
                ));
                break;
            }
            live_runs.push(next);
            index_units += 1;
            match Run::open(dir, next, false) {
                Err(RunError::Io { source, .. }) => {
                    problems.push(Problem::new(
                        &name,
                        0,
                        Kind::Index,
                        format!("cannot open: {source}"),
                    ));
                    break;
                }
                Err(RunError::Corrupt { detail, .. }) => {
                    problems.push(Problem::new(&name, 0, Kind::Index, detail));
                    break;
                }
                Ok(run) => {
                    if let Some((at, d)) = run.first_problem() {
                        problems.push(Problem::new(&name, at, Kind::Index, d));
                    }
                    if covers_prev.is_none() && run.covers_end != h.indexed_end {
                        problems.push(Problem::new(
                            &name,
                            40,
                            Kind::Index,
                            format!(
                                "covers the log up to {}, the commit says {}",
                                run.covers_end, h.indexed_end
                            ),
                        ));
                    }
                    if run.covers_end > log_len {
                        problems.push(Problem::new(
                            LOG,
                            log_len,
                            Kind::Truncated,
                            format!(
                                "the log ends at {log_len} but {name} indexes it up to {}",
                                run.covers_end
                            ),
                        ));
                    }
                    covers_prev = Some(run.covers_end);
                    next = run.older;
                    runs_checked_entries(&run, &name, &by_offset, &mut problems);
                }
            }
        }
    }
    if let Ok(d) = std::fs::read_dir(dir) {
        for e in d.flatten() {
            if let Some(n) = e.file_name().to_str().and_then(parse_run_file_name) {
                if !live_runs.contains(&n) {
                    notes.push(format!(
                        "{}: a run no commit names (a writable open deletes it)",
                        run_file_name(n)
                    ));
                }
            }
        }
    }
    if let Some(h) = head {
        // Every record below indexed_end must be in the runs.
        let runs: Vec<Run> = live_runs
            .iter()
            .filter_map(|n| Run::open(dir, *n, false).ok())
            .collect();
        if runs.len() == live_runs.len() {
            let missing: Vec<Problem> = recs
                .par_iter()
                .filter(|r| r.offset < h.indexed_end)
                .filter(|r| !runs.iter().any(|run| run.get(&r.id).is_some()))
                .map(|r| {
                    Problem::new(
                        LOG,
                        r.offset,
                        Kind::Index,
                        "the record is not in the index runs",
                    )
                    .with_id(r.id)
                })
                .collect();
            problems.extend(missing);
        }
    }
    Ok(Scan {
        format: Format::Native,
        rec_file: LOG.into(),
        map,
        recs,
        uncommitted,
        problems,
        notes,
        roots,
        file_bytes: disk_bytes(dir),
        index_units,
        sorted: false,
        buckets: Vec::new(),
    })
}

/// Checks that every entry of a run names a record that starts at its address with its id.
fn runs_checked_entries(
    run: &Run,
    name: &str,
    by_offset: &HashMap<u64, [u8; 32]>,
    problems: &mut Vec<Problem>,
) {
    let entries: Vec<([u8; 32], u64)> = run.iter().collect();
    let bad: Vec<Problem> = entries
        .par_iter()
        .enumerate()
        .filter_map(|(i, (id, addr))| {
            let at = (etch_engine::store::native::run::RUN_HEADER_BYTES
                + i * etch_engine::store::native::run::RUN_ENTRY_BYTES) as u64;
            match by_offset.get(addr) {
                Some(rid) if rid == id => None,
                Some(_) => Some(
                    Problem::new(
                        name,
                        at,
                        Kind::Index,
                        format!("entry {i} points at {addr}, a record of another id"),
                    )
                    .with_id(*id),
                ),
                None => Some(
                    Problem::new(
                        name,
                        at,
                        Kind::Index,
                        format!("entry {i} points at {addr}, where no record starts"),
                    )
                    .with_id(*id),
                ),
            }
        })
        .collect();
    problems.extend(bad);
}

// ---------------------------------------------------------------------------------------------
// CAD047

const TYPE_SHIFT: u32 = 62;
const PTR_MASK: u64 = (1 << 62) - 1;

fn scan_cad(path: &Path, show: bool) -> Result<Scan, String> {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let map = Mapped::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let b = map.bytes();
    let mut problems = Vec::new();
    let notes = Vec::new();
    let phys = b.len() as u64;
    let mut scan = Scan {
        format: Format::Cad047,
        rec_file: name.clone(),
        map: Mapped(None),
        recs: Vec::new(),
        uncommitted: Vec::new(),
        problems: Vec::new(),
        notes,
        roots: Vec::new(),
        file_bytes: phys,
        index_units: 0,
        sorted: false,
        buckets: Vec::new(),
    };
    if phys < DATA_START {
        problems.push(Problem::new(
            &name,
            0,
            if phys < 44 {
                Kind::Header
            } else {
                Kind::Truncated
            },
            format!("{phys} bytes: shorter than the header and root index block ({DATA_START})"),
        ));
        scan.problems = problems;
        scan.map = map;
        return Ok(scan);
    }
    if b[0..2] != cad047::MAGIC {
        problems.push(Problem::new(
            &name,
            0,
            Kind::Header,
            format!("bad magic {}", hex::encode(&b[0..2])),
        ));
    }
    let version = u16::from_be_bytes([b[2], b[3]]);
    if version != cad047::VERSION {
        problems.push(Problem::new(
            &name,
            2,
            Kind::Header,
            format!("version {version}, not 1"),
        ));
    }
    let stated = be_u64(b, 4) as i64;
    let len = if stated < DATA_START as i64 {
        problems.push(Problem::new(
            &name,
            4,
            Kind::Header,
            format!("data length {stated} is below the minimum {DATA_START}"),
        ));
        phys
    } else if stated as u64 > phys {
        problems.push(Problem::new(
            &name,
            4,
            Kind::Truncated,
            format!("data length {stated} is beyond the end of the file ({phys} bytes)"),
        ));
        phys
    } else {
        stated as u64
    };
    let root = id_at(b, 12);
    scan.roots.push(RootRef {
        id: (root != [0u8; 32]).then_some(root),
        seq: 0,
        offset: 12,
        reachable: true,
    });
    let pb = bar(len, "index", true);
    if !show {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut blocks_seen: HashSet<u64> = HashSet::new();
    let mut recs_seen: HashSet<u64> = HashSet::new();
    // (block offset, level, digits of the path)
    let mut stack: Vec<(u64, usize, Vec<usize>)> = vec![(cad047::ROOT_BLOCK_OFFSET, 0, Vec::new())];
    let slot_at = |block: u64, d: usize| be_u64(b, (block + 8 * d as u64) as usize);
    let mut blocks = 0u64;
    while let Some((block, level, path_digits)) = stack.pop() {
        blocks += 1;
        pb.inc(8 * level_slots(level) as u64);
        let n = level_slots(level);
        for d in 0..n {
            let s = slot_at(block, d);
            if s == 0 {
                continue;
            }
            let soff = block + 8 * d as u64;
            let ty = s >> TYPE_SHIFT;
            let p = s & PTR_MASK;
            if p < DATA_START || p >= len {
                problems.push(Problem::new(
                    &name,
                    soff,
                    Kind::Index,
                    format!("slot points at {p}, outside [{DATA_START}, {len}) (§8.2)"),
                ));
                continue;
            }
            if ty == 1 {
                if level >= LEVEL_MAX {
                    problems.push(Problem::new(
                        &name,
                        soff,
                        Kind::Index,
                        "an index block below level 59 (§8.3)",
                    ));
                    continue;
                }
                let size = 8 * level_slots(level + 1) as u64;
                if p + size > len {
                    problems.push(Problem::new(
                        &name,
                        soff,
                        Kind::Index,
                        format!("index block at {p} runs past the data length {len} (§8.2)"),
                    ));
                    continue;
                }
                if !blocks_seen.insert(p) {
                    problems.push(Problem::new(
                        &name,
                        soff,
                        Kind::Index,
                        format!("index block at {p} is referenced twice"),
                    ));
                    continue;
                }
                let mut pd = path_digits.clone();
                pd.push(d);
                stack.push((p, level + 1, pd));
                continue;
            }
            // A record.
            if p + cad047::RECORD_HEADER_BYTES > len {
                problems.push(Problem::new(
                    &name,
                    p,
                    Kind::Record,
                    format!("record header runs past the data length {len}"),
                ));
                continue;
            }
            let pu = p as usize;
            let key = id_at(b, pu);
            let n_enc = i16::from_be_bytes([b[pu + 41], b[pu + 42]]);
            if n_enc < 1 || n_enc as usize > ENCODING_BYTES_MAX {
                problems.push(
                    Problem::new(
                        &name,
                        p + 41,
                        Kind::Record,
                        format!("record length {n_enc} outside 1..=16383 (§8.6)"),
                    )
                    .with_id(key),
                );
                continue;
            }
            if p + cad047::RECORD_HEADER_BYTES + n_enc as u64 > len {
                problems.push(
                    Problem::new(
                        &name,
                        p,
                        Kind::Record,
                        format!("a record of {n_enc} bytes runs past the data length {len}"),
                    )
                    .with_id(key),
                );
                continue;
            }
            // §8.4: the key's digits follow the path; its own digit is the slot's (or, in a
            // chain, the START's).
            let mut bad_path = false;
            for (j, want) in path_digits.iter().enumerate() {
                if digit(&key, j) != *want {
                    bad_path = true;
                }
            }
            let own = digit(&key, level);
            let slot_digit = match ty {
                3 => {
                    // Find the chain's START backwards.
                    let mut a = d;
                    let mut found = None;
                    for _ in 0..n {
                        a = (a + n - 1) % n;
                        let sa = slot_at(block, a);
                        match (sa != 0).then_some(sa >> TYPE_SHIFT) {
                            Some(2) => {
                                found = Some(a);
                                break;
                            }
                            Some(3) => {}
                            _ => break,
                        }
                    }
                    if found.is_none() {
                        problems.push(
                            Problem::new(
                                &name,
                                soff,
                                Kind::Index,
                                "a CHAIN slot with no START before it (§8.5)",
                            )
                            .with_id(key),
                        );
                    }
                    found
                }
                _ => Some(d),
            };
            if ty == 2 {
                let nx = slot_at(block, (d + 1) % n);
                if nx == 0 || nx >> TYPE_SHIFT != 3 {
                    problems.push(
                        Problem::new(
                            &name,
                            soff,
                            Kind::Index,
                            "a START slot not followed by a CHAIN slot (§8.5)",
                        )
                        .with_id(key),
                    );
                }
            }
            if bad_path || slot_digit.is_some_and(|sd| sd != own) {
                problems.push(
                    Problem::new(
                        &name,
                        soff,
                        Kind::Index,
                        format!("the slot's record (at {p}) has a key whose digits do not lead here (§8.4)"),
                    )
                    .with_id(key),
                );
            }
            if !recs_seen.insert(p) {
                problems.push(
                    Problem::new(
                        &name,
                        soff,
                        Kind::Index,
                        format!("record at {p} is referenced by two slots"),
                    )
                    .with_id(key),
                );
                continue;
            }
            scan.recs.push(Rec {
                id: key,
                offset: p,
                enc_at: p + cad047::RECORD_HEADER_BYTES,
                len: n_enc as u32,
                flags: b[pu + 32],
                mem: be_u64(b, pu + 33),
                good: false,
                summary: None,
            });
        }
    }
    pb.finish_and_clear();
    scan.index_units = blocks;
    scan.problems = problems;
    scan.map = map;
    scan.sort_by_offset();
    Ok(scan)
}

/// Records found by trying every offset of a CAD047 file's data region: where the bytes are a
/// record (plausible label, length within the data, encoding hashing to the key). For recovery
/// of records whose index slots were lost. `(offset, key, flags, memory size, length)`.
pub fn deep_cad_records(b: &[u8], len: u64) -> Vec<(u64, [u8; 32], u8, u64, u32)> {
    let len = (len as usize).min(b.len());
    let start = DATA_START as usize;
    if len <= start {
        return Vec::new();
    }
    // Chunks in parallel; a record straddling a chunk boundary is found by the chunk it
    // starts in (a chunk reads past its end).
    const CHUNK: usize = 1 << 20;
    let starts: Vec<usize> = (start..len).step_by(CHUNK).collect();
    let mut found: Vec<(u64, [u8; 32], u8, u64, u32)> = starts
        .par_iter()
        .flat_map_iter(|&c0| {
            let c1 = (c0 + CHUNK).min(len);
            let mut out = Vec::new();
            let mut at = c0;
            while at < c1 {
                let h = cad047::RECORD_HEADER_BYTES as usize;
                if at + h > len {
                    break;
                }
                let flags = b[at + 32];
                let n = i16::from_be_bytes([b[at + 41], b[at + 42]]);
                let ok = flags & 0x0f != 0
                    && n >= 1
                    && (n as usize) <= ENCODING_BYTES_MAX
                    && at + h + n as usize <= len
                    && CellKind::of_tag(b[at + h]).is_some()
                    && ValueId::of(&b[at + h..at + h + n as usize]).0 == id_at(b, at);
                if ok {
                    out.push((at as u64, id_at(b, at), flags, be_u64(b, at + 33), n as u32));
                    at += h + n as usize;
                } else {
                    at += 1;
                }
            }
            out
        })
        .collect();
    found.sort_by_key(|f| f.0);
    found.dedup_by_key(|f| f.0);
    found
}

/// Records whose encoding is too long for any cell are never valid: the scanners and the
/// native writer agree on this bound.
const _: () = assert!(ENCODING_BYTES_MAX <= RECORD_ENCODING_MAX);
