{
  "targets": [
    {
      "target_name": "pxe_udp",
      "sources": ["native/pxe_udp.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "conditions": [["OS!='linux'", {"type": "none", "sources": []}]]
    }
  ]
}
