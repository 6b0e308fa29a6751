package main

import "testing"

func TestProcKB(t *testing.T) {
	status := []byte("Name:\tportcullis\nVmPeak:\t 1000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n")
	got, err := procKB(status, "VmHWM")
	if err != nil || got != 20<<20 {
		t.Errorf("VmHWM = %d, %v; want %d", got, err, 20<<20)
	}
	if _, err := procKB(status, "MemTotal"); err == nil {
		t.Error("a missing line is not an error")
	}
}
