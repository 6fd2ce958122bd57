// Package fsutil writes files the way lanlink's plan and key files must be
// written: atomically (a reader or a crash sees the old file or the new one,
// never half of either) and, where asked, without ever replacing an existing
// file. It must not know anything about what the files contain.
package fsutil
