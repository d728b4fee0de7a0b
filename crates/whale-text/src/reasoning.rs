//! The `<think>`…`</think>` reasoning split (filled in by the text work).
