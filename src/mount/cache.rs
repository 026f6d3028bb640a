//! The content blobs a mount read lately, bounded in bytes: the kernel
//! asks for a file in pieces of up to 128 KiB, a blob is about 1 MiB, so
//! without this every piece would read and decrypt its whole blob again.

use crate::repo::crypto::BlobId;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub struct BlobCache {
    limit: usize,
    bytes: usize,
    tick: u64,
    blobs: HashMap<BlobId, (Arc<Vec<u8>>, u64)>,
    /// Least recently used first.
    order: BTreeMap<u64, BlobId>,
}

impl BlobCache {
    pub fn new(limit: usize) -> BlobCache {
        BlobCache {
            limit,
            bytes: 0,
            tick: 0,
            blobs: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    pub fn get(&mut self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        self.tick += 1;
        let (data, used) = self.blobs.get_mut(id)?;
        self.order.remove(used);
        *used = self.tick;
        self.order.insert(self.tick, *id);
        Some(data.clone())
    }

    /// Keeps `data`, forgetting the least recently used blobs past the
    /// limit (a blob larger than the whole limit is not kept).
    pub fn insert(&mut self, id: BlobId, data: Arc<Vec<u8>>) {
        if data.len() > self.limit || self.blobs.contains_key(&id) {
            return;
        }
        while self.bytes + data.len() > self.limit {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((gone, _)) = self.blobs.remove(&oldest) {
                self.bytes -= gone.len();
            }
        }
        self.tick += 1;
        self.bytes += data.len();
        self.order.insert(self.tick, id);
        self.blobs.insert(id, (data, self.tick));
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_its_limit_and_forgets_the_least_recently_used() {
        let mut cache = BlobCache::new(10);
        let blob = |n: u8, len: usize| ([n; 32], Arc::new(vec![n; len]));
        let (a, b, c) = (blob(1, 4), blob(2, 4), blob(3, 4));
        cache.insert(a.0, a.1.clone());
        cache.insert(b.0, b.1.clone());
        assert!(cache.get(&a.0).is_some(), "a is now the most recent");
        cache.insert(c.0, c.1.clone());
        assert!(cache.bytes() <= 10);
        assert!(cache.get(&b.0).is_none(), "b was the least recently used");
        assert!(cache.get(&a.0).is_some() && cache.get(&c.0).is_some());
        let huge = blob(4, 11);
        cache.insert(huge.0, huge.1);
        assert!(cache.get(&huge.0).is_none(), "larger than the whole cache");
        assert_eq!(cache.bytes(), 8);
    }
}
