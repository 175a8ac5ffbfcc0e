// Real Caffe 1.0 forward in double precision (caffe::Net<double>), which pycaffe cannot do:
// pycaffe binds only Net<float>, while libcaffe instantiates every layer for float and double.
//
//   caffe_double PROTOTXT CAFFEMODEL OUTDIR INPUT_NAME INPUT_FILE [INPUT_NAME INPUT_FILE ...]
//
// Each INPUT_FILE holds the input blob's values as raw little-endian doubles (the blob's shape
// comes from the prototxt). After one TEST-phase forward, OUTDIR/blobs.txt lists every blob in
// Net order, one per line: "<index> <num_axes> <dim0> <dim1> ... <name>" (the name last, as it may
// hold spaces or slashes), and OUTDIR/blob<index>.f64 holds its values as raw doubles.
// OUTDIR/params.txt and param<index>.f64 do the same for the parameter blobs after the forward,
// in Net::params() order (layer by layer; a BatchNorm without use_global_stats updates its own).
// Built and run inside the bullseye chroot by net_worker.py.
#include <boost/shared_ptr.hpp>
#include <caffe/caffe.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace {

void read_doubles(const std::string& path, caffe::Blob<double>* blob) {
  std::ifstream in(path.c_str(), std::ios::binary);
  in.read(reinterpret_cast<char*>(blob->mutable_cpu_data()), blob->count() * sizeof(double));
  CHECK(in && in.gcount() == static_cast<std::streamsize>(blob->count() * sizeof(double)))
      << "input file " << path << " does not hold " << blob->count() << " doubles";
}

// OUTDIR/<prefix>s.txt lists each blob as "<index> <num_axes> <dims...>[ <name>]";
// OUTDIR/<prefix><index>.f64 holds its values.
void write_blobs(const std::string& out_dir, const std::string& prefix,
                 const std::vector<boost::shared_ptr<caffe::Blob<double> > >& blobs,
                 const std::vector<std::string>* names) {
  std::ofstream listing((out_dir + "/" + prefix + "s.txt").c_str());
  for (size_t i = 0; i < blobs.size(); ++i) {
    const caffe::Blob<double>& blob = *blobs[i];
    listing << i << " " << blob.num_axes();
    for (int axis = 0; axis < blob.num_axes(); ++axis) listing << " " << blob.shape(axis);
    if (names) listing << " " << (*names)[i];
    listing << "\n";
    std::ofstream values((out_dir + "/" + prefix + std::to_string(i) + ".f64").c_str(),
                         std::ios::binary);
    values.write(reinterpret_cast<const char*>(blob.cpu_data()), blob.count() * sizeof(double));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CHECK(argc >= 4 && argc % 2 == 0) << "usage: caffe_double PROTOTXT CAFFEMODEL OUTDIR "
                                       "[INPUT_NAME INPUT_FILE]...";
  caffe::Caffe::set_mode(caffe::Caffe::CPU);
  caffe::Net<double> net(argv[1], caffe::TEST);
  net.CopyTrainedLayersFrom(argv[2]);
  const std::string out_dir = argv[3];
  for (int i = 4; i < argc; i += 2) {
    CHECK(net.has_blob(argv[i])) << "no blob named " << argv[i];
    read_doubles(argv[i + 1], net.blob_by_name(argv[i]).get());
  }
  net.Forward();

  write_blobs(out_dir, "blob", net.blobs(), &net.blob_names());
  write_blobs(out_dir, "param", net.params(), NULL);
  return 0;
}
