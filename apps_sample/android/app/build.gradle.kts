plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
    alias(libs.plugins.kotlin.compose)
}

android {
    namespace = "dev.pocketbert.app"
    compileSdk = 35

    defaultConfig {
        applicationId = "dev.pocketbert.app"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    buildFeatures { compose = true }
    // Models are memory-mapped from the APK: never compress them. An ExecuTorch .pte is copied to app storage
    // once per bundle (Module.load takes a path); stored uncompressed, that copy is a plain read.
    androidResources { noCompress += listOf("tflite", "onnx", "data", "pte") }
}

kotlin { jvmToolchain(17) }

dependencies {
    implementation(project(":core"))
    implementation(libs.litert)
    implementation(libs.onnxruntime.android)
    implementation(libs.executorch.android) // native code for arm64-v8a and x86_64 only
    implementation(platform(libs.compose.bom))
    implementation(libs.compose.material3)
    implementation(libs.compose.ui)
    implementation(libs.compose.ui.tooling.preview)
    implementation(libs.activity.compose)
    implementation(libs.lifecycle.runtime)
    implementation(libs.coroutines.android)
}
