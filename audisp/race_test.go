//go:build race

package audisp

const raceEnabled = true
