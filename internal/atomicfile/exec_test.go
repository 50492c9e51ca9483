package atomicfile

import "os/exec"

var osexec = exec.Command
