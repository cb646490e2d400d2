package cli

import "os"

var interruptSignal = os.Interrupt
