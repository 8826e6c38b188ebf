package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

func goarch() string { return runtime.GOARCH }

// cpuTime returns the user+system CPU time a process has used so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; fields after it
	// start past the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// machineBusy is the CPU time all processes used so far (from /proc/stat).
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected %q", line)
	}
	var busy uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}

// ownCPU is the CPU time of this process and of its children that
// exited and were waited for (the servers it stopped, go build).
func ownCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return 0, errors.New("/proc/self/stat: short")
	}
	var sum uint64
	for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/self/stat: %w", err)
		}
		sum += n
	}
	return time.Duration(sum) * time.Second / clockTicks, nil
}

// background measures the CPU that processes other than the harness and
// its servers used over a span, as % of one core. It is exact only when
// every server started in the span was also stopped in it.
type background struct {
	busy, own time.Duration
	wall      time.Time
}

func startBackground() background {
	busy, _ := machineBusy()
	own, _ := ownCPU()
	return background{busy: busy, own: own, wall: time.Now()}
}

func (bg background) percent() float64 {
	busy, err1 := machineBusy()
	own, err2 := ownCPU()
	if err1 != nil || err2 != nil {
		return nan
	}
	other := (busy - bg.busy) - (own - bg.own)
	return max(0, 100*float64(other)/float64(time.Since(bg.wall)))
}

// cpuMeter measures a process's CPU use over a window as % of one core.
type cpuMeter struct {
	pid   int
	cpu0  time.Duration
	wall0 time.Time
}

func startCPU(pid int) (*cpuMeter, error) {
	c, err := cpuTime(pid)
	return &cpuMeter{pid: pid, cpu0: c, wall0: time.Now()}, err
}

// percent returns CPU used since start as a percentage of one core.
func (m *cpuMeter) percent() (float64, error) {
	c, err := cpuTime(m.pid)
	if err != nil {
		return 0, err
	}
	wall := time.Since(m.wall0)
	return 100 * float64(c-m.cpu0) / float64(wall), nil
}

// memStatus returns VmRSS and VmHWM of a process in bytes.
func memStatus(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	return rss, hwm, sc.Err()
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// machine describes where the benchmark ran.
type machine struct {
	CPU, Kernel, Go, Etcd, Disk, Date, LoadStart, LoadEnd string
	Source                                                string // roster's git revision
	Cores                                                 int
	MemBytes                                              int64
}

func describeMachine(dataDir, etcdBin string) machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version(), Date: time.Now().UTC().Format(time.RFC3339), LoadStart: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.MemBytes = n << 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Etcd = "not run"
	if etcdBin != "" {
		if out, err := exec.Command(etcdBin, "--version").Output(); err == nil {
			first, _, _ := strings.Cut(string(out), "\n")
			m.Etcd = strings.TrimSpace(first)
		}
	}
	m.Disk = describeDisk(dataDir)
	m.Source = describeSource()
	return m
}

// describeSource names the roster revision being measured: the commit and
// how many tracked files differ from it.
func describeSource() string {
	rev, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	s := "commit " + strings.TrimSpace(string(rev))
	if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
		if n := strings.Count(string(out), "\n"); n > 0 {
			s += fmt.Sprintf(" with %d modified tracked files", n)
		}
	}
	return s
}

// describeDisk names the file system and block device holding dir.
func describeDisk(dir string) string {
	var st syscall.Statfs_t
	fsType := "?"
	if err := syscall.Statfs(dir, &st); err == nil {
		fsType = map[int64]string{0xEF53: "ext4", 0x01021994: "tmpfs", 0x58465342: "xfs", 0x9123683E: "btrfs",
			0x794c7630: "overlayfs", 0x2FC12FC1: "zfs"}[int64(st.Type)]
		if fsType == "" {
			fsType = fmt.Sprintf("fs 0x%x", st.Type)
		}
	}
	dev, mnt := "", ""
	if b, err := os.ReadFile("/proc/self/mounts"); err == nil {
		abs, _ := filepath.Abs(dir)
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			if (abs == f[1] || strings.HasPrefix(abs, strings.TrimSuffix(f[1], "/")+"/")) && len(f[1]) >= len(mnt) {
				dev, mnt = f[0], f[1]
			}
		}
	}
	desc := fmt.Sprintf("%s on %s (mounted at %s)", fsType, dev, mnt)
	if name := strings.TrimPrefix(dev, "/dev/"); name != dev {
		if b, err := os.ReadFile("/sys/block/" + name + "/queue/rotational"); err == nil {
			desc += ", rotational=" + strings.TrimSpace(string(b))
		}
	}
	return desc
}
