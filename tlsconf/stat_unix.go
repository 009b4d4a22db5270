package tlsconf

import (
	"os"
	"syscall"
)

func statOf(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	sp := stamp{path: path, mod: fi.ModTime(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		sp.inode = sys.Ino
	}
	return sp, nil
}
