// `agentvm-bench channel`: the host-guest channel's ceiling against what our
// protocol gets through it, in one VM booted by hand (ManualVm), in turns:
//   raw   `dd` from /dev/zero straight into a second virtio-serial port,
//         read on the host from that port's socket: no protocol at all;
//   exec  the same `dd` to stdout, through our agent's exec (output frames,
//         flow-control credit), as GuestChannel::Exec delivers it;
//   file  a file of the same size read back with ReadFileChunk, 1 MiB at a
//         time (`agentvm cp` out, without HTTP and read-ahead).
// Prints a markdown table of the medians and the ratios to raw.
#pragma once

namespace agentvm::bench {

// argv[0] is "channel"; [--mib N (50)] [--runs N (3)] [--image NAME (tiny)]
// [--image-dir DIR (/var/lib/agentvm/images)].
int ChannelMain(int argc, char** argv);

}  // namespace agentvm::bench
