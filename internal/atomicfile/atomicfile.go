// Package atomicfile writes files so that a reader, or the next run after a
// crash, finds either no file, the old file or the complete new one, never a
// partial one. Every atomic write of the module goes through it: the bytes
// go to a hidden temporary file in the destination's folder
// (".NAME.tmp-RANDOM"), which is synced, then renamed over the destination
// (or hard-linked to it when an existing file must not be replaced), and the
// folder is synced so the new name survives a crash too.
//
// A crash can leave a ".NAME.tmp-*" file behind, never a partial NAME.
// It uses only the standard library, so sdk/safetensors can use it.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// File is a temporary file that becomes path on Commit or CommitNew.
type File struct {
	// DeferDirSync skips the sync of the folder after the commit: a writer
	// of many files in one folder (save) syncs it once with [SyncDir] when
	// it is done. The file itself is always synced before it is named, so a
	// crash can lose the name, never leave a partial file under it.
	DeferDirSync bool

	f    *os.File
	path string
	perm fs.FileMode
	// closed: the temporary file is written and synced; done: it no longer
	// exists under its temporary name.
	closed, done bool
}

// Create starts a file that will become path; path's folder must exist.
// The caller writes it, then calls Commit or CommitNew; Abort (safe to
// defer) removes the temporary file when neither succeeded.
func Create(path string, perm fs.FileMode) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, err
	}
	return &File{f: f, path: path, perm: perm}, nil
}

// Name is the temporary file's path.
func (f *File) Name() string { return f.f.Name() }

// Path is the destination.
func (f *File) Path() string { return f.path }

// Write writes to the temporary file.
func (f *File) Write(p []byte) (int, error) { return f.f.Write(p) }

// finish sets the mode (CreateTemp makes files 0600), syncs and closes the
// temporary file, once.
func (f *File) finish() error {
	if f.closed {
		return nil
	}
	if err := f.f.Chmod(f.perm); err != nil {
		return err
	}
	if err := f.f.Sync(); err != nil {
		return err
	}
	if err := f.f.Close(); err != nil {
		return err
	}
	f.closed = true
	return nil
}

// Commit replaces path with the file.
func (f *File) Commit() error {
	if err := f.finish(); err != nil {
		return err
	}
	if err := os.Rename(f.f.Name(), f.path); err != nil {
		return err
	}
	f.done = true
	f.syncDir()
	return nil
}

func (f *File) syncDir() {
	if !f.DeferDirSync {
		SyncDir(filepath.Dir(f.path))
	}
}

// CommitNew puts the file at path only if nothing is there: when path
// exists it returns an error matching fs.ErrExist and keeps the temporary
// file, so the caller may deal with the existing one and call CommitNew or
// Commit again (or Abort). The check and the write are one step (a hard
// link), so of two writers of one path exactly one succeeds.
func (f *File) CommitNew() error {
	if err := f.finish(); err != nil {
		return err
	}
	err := os.Link(f.f.Name(), f.path)
	if err != nil && !errors.Is(err, fs.ErrExist) && noLinks(err) {
		// A filesystem without hard links: check, then rename (not
		// atomic against a concurrent writer of the same path).
		if _, serr := os.Lstat(f.path); serr == nil {
			return &fs.PathError{Op: "link", Path: f.path, Err: fs.ErrExist}
		}
		err = os.Rename(f.f.Name(), f.path)
		if err == nil {
			f.done = true
		}
	}
	if err != nil {
		return err
	}
	if !f.done {
		if err := os.Remove(f.f.Name()); err != nil {
			return err
		}
		f.done = true
	}
	f.syncDir()
	return nil
}

// noLinks reports whether a failed link says the filesystem has no hard
// links (as opposed to a missing folder or a permission problem).
func noLinks(err error) bool {
	var le *os.LinkError
	if !errors.As(err, &le) {
		return false
	}
	return isNoLinkErrno(le.Err)
}

// Abort removes the temporary file unless it was committed.
func (f *File) Abort() {
	if f.done {
		return
	}
	if !f.closed {
		f.f.Close()
	}
	os.Remove(f.f.Name())
	f.done = true
}

// Write replaces path with data atomically.
func Write(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, (*File).Commit)
}

// WriteNew writes data to path atomically if path does not exist; if it
// does, it returns an error matching fs.ErrExist and leaves it alone.
func WriteNew(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, (*File).CommitNew)
}

func write(path string, data []byte, perm fs.FileMode, commit func(*File) error) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return commit(f)
}

// SyncDir makes the names in dir durable. It is best effort: some
// platforms cannot sync a folder, and failing there does not undo a write.
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
