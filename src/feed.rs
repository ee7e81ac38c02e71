//! Feed rendering from stored items: RSS 2.0 (and Atom / JSON Feed). The one place
//! that turns items into feed bytes.
